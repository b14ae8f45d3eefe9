"""Feature keys of the examples the image ExampleGen writes: the contract with Transform and trainer/.

Every example carries every key, so one schema (and one parsing spec) fits paired, unpaired and
patched data alike. Empty bytes mean "this example has no image on that side".
"""
from __future__ import annotations

PHONE = "phone"  # bytes: encoded 8-bit RGB image (JPEG or PNG); b"" when the example has none
DSLR = "dslr"  # bytes: as PHONE, for the DSLR side
PAIR_ID = "pair_id"  # bytes: stable id of the photo pair (or single photo) the example came from
PATCH_INDEX = "patch_index"  # int64: index of the patch within its image; WHOLE_IMAGE when uncut
DOMAIN = "domain"  # bytes: DOMAIN_PAIRED, DOMAIN_A (phone) or DOMAIN_B (DSLR)
SOURCE = "source"  # bytes: camera name (the DPED phone folder, or "dslr" for DSLR-only examples)
HEIGHT = "height"  # int64: height in pixels of the image(s) in this example
WIDTH = "width"  # int64: width in pixels
PHONE_FILE = "phone_file"  # bytes: path relative to the data root; b"" when none
DSLR_FILE = "dslr_file"  # bytes: as PHONE_FILE

BYTES_KEYS: tuple[str, ...] = (PHONE, DSLR, PAIR_ID, DOMAIN, SOURCE, PHONE_FILE, DSLR_FILE)
INT_KEYS: tuple[str, ...] = (PATCH_INDEX, HEIGHT, WIDTH)
ALL_KEYS: tuple[str, ...] = BYTES_KEYS + INT_KEYS

DOMAIN_PAIRED = b"paired"
DOMAIN_A = b"A"
DOMAIN_B = b"B"
DSLR_SOURCE = b"dslr"
WHOLE_IMAGE = -1

TRAIN, EVAL, TEST = "train", "eval", "test"
SPLITS: tuple[str, ...] = (TRAIN, EVAL, TEST)


def parsing_spec() -> dict:
    """`tf.io.parse_example` spec for every key (all scalars), for readers that have no schema."""
    import tensorflow as tf

    spec = {k: tf.io.FixedLenFeature([], tf.string) for k in BYTES_KEYS}
    spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in INT_KEYS})
    return spec

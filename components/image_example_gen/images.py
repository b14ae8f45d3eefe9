"""Decoding, normalising and cutting one photo: every image leaves here as 8-bit sRGB or not at all.

Downstream code decodes with `tf.io.decode_image(channels=3)`, which ignores EXIF orientation and
ICC profiles, knows neither TIFF nor CMYK and reads an alpha channel as colour; Pillow itself reads
16-bit colour PNGs as their high byte and clips 16/32-bit gray. So anything that would decode
differently there than it looks to a person is fixed here, once, and counted: the mode (modes.py:
every mode Pillow opens, scaled by its white level or set aside), the orientation, the colour
profile (colour.py: converted to sRGB) and the alpha channel. Original bytes are kept only for
plain RGB JPEG and PNG files used whole, so no photo is compressed twice.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

from PIL import Image, ImageFile, UnidentifiedImageError

from phone2dslr.components.image_example_gen import colour, modes
from phone2dslr.components.image_example_gen.modes import Rejected  # noqa: F401  (reading.py's too)
from phone2dslr.errors import one_line  # noqa: F401  (also reading.py's: "<Type>: <message>" of a decoder error)

KEEP_ORIGINAL_FORMATS = frozenset({"JPEG", "PNG"})
PNG_COMPRESS_LEVEL = 1  # lossless at any level; on photo patches 1 is ~3x faster than 6 and no larger
_EXIF_ORIENTATION = 0x0112
# EXIF orientation -> the transpose that shows the photo upright (as PIL.ImageOps.exif_transpose).
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


@dataclass
class Decoded:
    """A loaded 8-bit sRGB image (mode RGB), the original bytes when they may be kept, and what was fixed."""

    image: Image.Image
    original: bytes | None
    kinds: tuple[str, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def decode(data: bytes) -> Decoded:
    """Decodes fully (so truncation is found now, not in training) and normalises to 8-bit sRGB.

    Returns Decoded with `image` in mode RGB, `original` = data when nothing needed fixing (plain
    RGB JPEG/PNG without a non-sRGB profile) and `kinds`, what was fixed ("grayscale", "16bit",
    "icc:Display P3", ...). Raises Rejected (reason, one-line detail) for anything that cannot be
    an image with known 8-bit sRGB values: empty, not an image, truncated, corrupt, too large,
    samples without a defined 8-bit mapping, an unreadable or mismatched ICC profile.
    """
    # Some libraries switch this on globally; a half-decoded photo must never pass as a good one.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise Rejected("empty_file", "the file has 0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "?"
        frames = getattr(img, "n_frames", 1)
        raw = modes.rawmode(img)
        img.load()
    except UnidentifiedImageError:
        raise Rejected("not_an_image", "no image format recognised in the file") from None
    except Image.DecompressionBombError as e:
        raise Rejected("too_large", one_line(e)) from None
    except Exception as e:  # noqa: BLE001  (every decoder failure means "set aside", with its text)
        detail = one_line(e)
        raise Rejected("truncated" if "truncat" in detail.lower() else "corrupt", detail) from None

    kinds: list[str] = []
    if frames > 1:
        kinds.append("multi_frame")  # the first frame is used
    try:
        icc = img.info.get("icc_profile")
        orientation = img.getexif().get(_EXIF_ORIENTATION, 1)
        if fmt == "PNG" and raw in modes.SIXTEEN_BIT_PNG:
            img = _sixteen_bit_png(data, raw)
            kinds.append("16bit")
        elif ";16" in raw and img.mode in ("RGB", "RGBA", "LA"):
            kinds.append("16bit")  # 16-bit colour TIFF: Pillow kept the high byte (within one level of v/257)
        if orientation in _UPRIGHT:
            img = img.transpose(_UPRIGHT[orientation])
            kinds.append("exif_rotated")
        source_mode = img.mode
        img = modes.to_8bit(img, raw, kinds)
        img = colour.to_srgb(img, icc, kinds, source_mode)
        img = modes.flatten(img, kinds)
    except Rejected:
        raise
    except Exception as e:  # noqa: BLE001  (odd metadata or modes are set aside, never crash the pipeline)
        raise Rejected("cannot_normalise", f"mode {img.mode}: {one_line(e)}") from None
    if fmt not in KEEP_ORIGINAL_FORMATS:
        kinds.append("format")
    return Decoded(img, None if kinds else data, tuple(kinds))


def _sixteen_bit_png(data: bytes, raw: str) -> Image.Image:
    """A 16-bit colour (or gray+alpha) PNG scaled exactly, round(v / 257): Pillow keeps only the high byte."""
    import tensorflow as tf  # loaded already wherever the ExampleGen runs; only these files need it

    values = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    return Image.fromarray(modes.scale_to_8bit(values, 65535), modes.SIXTEEN_BIT_PNG[raw])


def encode_png(img: Image.Image) -> bytes:
    out = io.BytesIO()
    img.save(out, "PNG", compress_level=PNG_COMPRESS_LEVEL)
    return out.getvalue()


def whole_bytes(decoded: Decoded) -> bytes:
    return decoded.original if decoded.original is not None else encode_png(decoded.image)


def crop_bytes(decoded: Decoded, x: int, y: int, size: int) -> bytes:
    """A patch as lossless PNG; a patch covering the whole image keeps the original bytes."""
    if (x, y) == (0, 0) and decoded.size == (size, size):
        return whole_bytes(decoded)
    return encode_png(decoded.image.crop((x, y, x + size, y + size)))


def patch_positions(width: int, height: int, size: int, stride: int, count: int,
                    seed: int) -> list[tuple[int, int]]:
    """Top-left corners: a grid with `stride`, or `count` seeded random ones; [] if too small.

    The positions depend only on the size and the seed, so both photos of a pair (same size,
    same seed) are cut at the same places.
    """
    if size <= 0 or width < size or height < size:
        return []
    if count > 0:
        rng = random.Random(seed)
        return [(rng.randint(0, width - size), rng.randint(0, height - size)) for _ in range(count)]
    stride = stride or size
    return [(x, y) for y in range(0, height - size + 1, stride) for x in range(0, width - size + 1, stride)]

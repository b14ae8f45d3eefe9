"""Decoding, normalising and cutting one photo: every image leaves here as 8-bit RGB or not at all.

Downstream code decodes with `tf.io.decode_image(channels=3)`, which ignores EXIF orientation,
knows neither TIFF nor CMYK, and reads an alpha channel as colour. So anything that would decode
differently there than it looks to a person is fixed here, once, and counted; original bytes are
kept only for plain RGB JPEG and PNG files used whole, so no photo is compressed twice.
"""
from __future__ import annotations

import io
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from phone2dslr.errors import one_line  # noqa: F401  (also reading.py's: "<Type>: <message>" of a decoder error)

KEEP_ORIGINAL_FORMATS = frozenset({"JPEG", "PNG"})
PNG_COMPRESS_LEVEL = 1  # lossless at any level; on photo patches 1 is ~3x faster than 6 and no larger
_EXIF_ORIENTATION = 0x0112
_SIXTEEN_BIT_MODES = frozenset({"I", "I;16", "I;16B", "I;16L", "I;16N"})


class Rejected(Exception):
    """A file that is set aside; `reason` is a short stable key, `detail` one line for people."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass
class Decoded:
    """A loaded 8-bit RGB image, the original bytes when they may be kept, and what was fixed."""

    image: Image.Image
    original: bytes | None
    kinds: tuple[str, ...]

    @property
    def size(self) -> tuple[int, int]:
        return self.image.size


def decode(data: bytes) -> Decoded:
    """Decode fully (so truncation is found now, not in training) and normalise to 8-bit RGB."""
    # Some libraries switch this on globally; a half-decoded photo must never pass as a good one.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    if not data:
        raise Rejected("empty_file", "the file has 0 bytes")
    try:
        img = Image.open(io.BytesIO(data))
        fmt = img.format or "?"
        frames = getattr(img, "n_frames", 1)
        rawmode = str(img.tile[0].args) if img.tile else ""
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
        if img.getexif().get(_EXIF_ORIENTATION, 1) not in (0, 1):
            img = ImageOps.exif_transpose(img)
            kinds.append("exif_rotated")
        if ";16" in rawmode and img.mode == "RGB":
            kinds.append("16bit")  # Pillow already reduced 16-bit RGB to 8 bits while decoding
        img = _to_rgb(img, kinds)
    except Rejected:
        raise
    except Exception as e:  # noqa: BLE001  (odd metadata or modes are set aside, never crash the pipeline)
        raise Rejected("cannot_normalise", f"mode {img.mode}: {one_line(e)}") from None
    if fmt not in KEEP_ORIGINAL_FORMATS:
        kinds.append("format")
    return Decoded(img, None if kinds else data, tuple(kinds))


def _to_rgb(img: Image.Image, kinds: list[str]) -> Image.Image:
    mode = img.mode
    if mode == "RGB":
        return img
    if mode in ("L", "1"):
        kinds.append("grayscale")
        return img.convert("RGB")
    if mode in _SIXTEEN_BIT_MODES:
        kinds.append("16bit")
        values = np.clip(np.asarray(img, dtype=np.float64), 0, 65535)
        return Image.fromarray(np.round(values / 257.0).astype(np.uint8), "L").convert("RGB")
    if mode == "CMYK":
        kinds.append("cmyk")
        return img.convert("RGB")
    if mode in ("P", "PA"):
        kinds.append("palette")
        if mode == "P" and "transparency" not in img.info:
            return img.convert("RGB")
        img = img.convert("RGBA")
    elif mode in ("LA", "RGBa"):
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        kinds.append("rgba")  # alpha is dropped by compositing on white, as a viewer shows it
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, img).convert("RGB")
    try:
        converted = img.convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise Rejected("unsupported_mode", f"mode {mode}: {one_line(e)}") from None
    kinds.append("other_mode")
    return converted


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

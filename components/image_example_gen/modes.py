"""Every image mode Pillow opens -> 8-bit values with the same meaning, or Rejected with the reason.

Pillow's own `convert` clips where it should scale: a 16-bit or 32-bit gray image becomes white
(every value above 255 is 255), a float image in [0, 1] becomes black. Here each mode's white level
is stated and the values are scaled to 8 bits by it (v * 255 / white, rounded); values whose white
level cannot be known (negative or non-finite samples, floats outside [0, 1]) are set aside rather
than guessed. The result is one of L, LA, RGB, RGBA or CMYK, so the ICC step (colour.py) sees
8-bit data in the profile's own space, and `flatten` then makes RGB.
"""
from __future__ import annotations

import re

import numpy as np
from PIL import Image

from phone2dslr.errors import one_line

EIGHT_BIT_MODES = frozenset({"L", "LA", "RGB", "RGBA", "CMYK"})
SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
SIXTEEN_BIT_PNG = {"LA;16B": "LA", "RGB;16B": "RGB", "RGBA;16B": "RGBA"}  # rawmode -> mode (Pillow keeps the high byte)
_INT_RAWMODE = re.compile(r"^I;(\d+)([A-Z]*)$")


class Rejected(Exception):
    """A file that is set aside; `reason` is a short stable key, `detail` one line for people."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def rawmode(img: Image.Image) -> str:
    """The decoder's rawmode of a just-opened image ("RGB;16B", "I;32S", ...): how the file stores samples."""
    if not img.tile:
        return ""
    args = img.tile[0].args
    first = args[0] if isinstance(args, tuple) and args else args
    return first if isinstance(first, str) else ""


def scale_to_8bit(values: np.ndarray, white: float) -> np.ndarray:
    """uint8 of round(values * 255 / white); values must lie in [0, white] (else they would clip)."""
    return np.round(values.astype(np.float64) * (255.0 / white)).astype(np.uint8)


def to_8bit(img: Image.Image, raw: str, kinds: list[str]) -> Image.Image:
    """An 8-bit L, LA, RGB, RGBA or CMYK image with the same picture; appends what was done to kinds.

    raw: rawmode(img) before load (tells 16-bit from 32-bit samples in mode I).
    Raises Rejected("unsupported_values") for samples without a defined 8-bit mapping and
    Rejected("unsupported_mode") for a mode Pillow cannot turn into RGB.
    """
    mode = img.mode
    if mode in EIGHT_BIT_MODES:
        if mode == "L":
            kinds.append("grayscale")
        return img
    if mode == "1":
        kinds.append("grayscale")
        return img.convert("L")
    if mode in SIXTEEN_BIT_MODES:
        kinds.append("16bit")
        return Image.fromarray(scale_to_8bit(np.asarray(img), 65535), "L")
    if mode == "I":
        return _int32(img, raw, kinds)
    if mode == "F":
        return _float(img, kinds)
    if mode in ("P", "PA"):
        kinds.append("palette")
        opaque = mode == "P" and "transparency" not in img.info
        return img.convert("RGB" if opaque else "RGBA")
    if mode in ("La", "RGBa", "RGBX"):  # premultiplied alpha is undone; X is padding
        return img.convert({"La": "LA", "RGBa": "RGBA", "RGBX": "RGB"}[mode])
    try:  # YCbCr, LAB, HSV: colour models Pillow converts exactly
        converted = img.convert("RGB")
    except Exception as e:  # noqa: BLE001
        raise Rejected("unsupported_mode", f"mode {mode}: {one_line(e)}") from None
    kinds.append("other_mode")
    return converted


def _int32(img: Image.Image, raw: str, kinds: list[str]) -> Image.Image:
    """Mode I: integer samples of 8, 16 or 32 bits (the rawmode says which, and whether signed)."""
    match = _INT_RAWMODE.match(raw)
    bits, flags = (int(match.group(1)), match.group(2)) if match else (32, "S")
    values = np.asarray(img).astype(np.int64)
    if bits == 32 and "S" not in flags and "F" not in flags:
        values = values & 0xFFFFFFFF  # unsigned 32-bit samples wrap negative in Pillow's int32
    if values.size and values.min() < 0:
        raise Rejected("unsupported_values", f"mode I ({raw or 'int32'}): negative samples "
                       f"(min {values.min()}) have no 8-bit mapping")
    peak = int(values.max()) if values.size else 0
    if bits <= 8:
        white = 255
    elif bits <= 16 or peak <= 65535:
        # 16-bit samples, or 16-bit data in a 32-bit container (as tools that widen I;16 write it):
        # scaling those by the 32-bit maximum would store black.
        white = 65535
    else:
        white = 2**32 - 1 if "S" not in flags else 2**31 - 1
    kinds.append("16bit" if white == 65535 else "32bit" if white > 65535 else "other_mode")
    return Image.fromarray(scale_to_8bit(values, white), "L")


def _float(img: Image.Image, kinds: list[str]) -> Image.Image:
    """Mode F: floats are display values with white at 1.0; anything outside [0, 1] is set aside."""
    values = np.asarray(img, dtype=np.float64)
    if values.size and not np.isfinite(values).all():
        raise Rejected("unsupported_values", "mode F: samples that are NaN or infinite")
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 0.0)
    if low < 0.0 or high > 1.0:
        raise Rejected("unsupported_values", f"mode F: float samples span [{low:g}, {high:g}]; only [0, 1] "
                       "(white at 1.0) has a defined 8-bit mapping (HDR or unscaled data needs tone mapping)")
    kinds.append("float")
    return Image.fromarray(scale_to_8bit(values, 1.0), "L")


def flatten(img: Image.Image, kinds: list[str]) -> Image.Image:
    """L, LA, RGB, RGBA or CMYK -> RGB: alpha composited on white (as a viewer shows it), CMYK without
    a profile by Pillow's formula (no profile: no better-defined colours)."""
    if img.mode == "RGB":
        return img
    if img.mode == "L":
        return img.convert("RGB")
    if img.mode == "CMYK":
        kinds.append("cmyk")
        return img.convert("RGB")
    kinds.append("rgba")
    rgba = img.convert("RGBA")
    white = Image.new("RGBA", img.size, (255, 255, 255, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")

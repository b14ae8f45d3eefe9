"""A decoded photo (`Photo`) and the error of one photo file (`PhotoError`): the types that
export/photo_files.py reads and writes and its helpers share (export/photo_color.py for the ICC
profile, export/photo_png16.py for 16-bit PNG).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from phone2dslr.errors import one_line

# A photo's reason in the summary: the message alone (the caller words the kind), bounded.
_one_line = functools.partial(one_line, with_type=False, limit=300)


class PhotoError(ValueError):
    """One photo cannot be read, decoded or written (one-line message)."""


@dataclass
class Photo:
    """A decoded photo, upright, as the samples that are enhanced and written back.

    rgb: uint8 or uint16 [H, W, 3], sRGB unless `notes` says otherwise; may be a read-only view
    (a rotation, or grey repeated into three channels). alpha: the same dtype [H, W], or None.
    """

    rgb: np.ndarray
    format: str  # "JPEG" or "PNG"
    alpha: np.ndarray | None = None
    exif: bytes | None = None  # without Orientation
    icc_profile: bytes | None = None  # what the output embeds (the input's, or sRGB after a conversion)
    notes: list[str] = field(default_factory=list)  # one line each: what could not be kept as documented

    @property
    def bits(self) -> int:
        """Bits per sample: 8 or 16."""
        return 8 * self.rgb.dtype.itemsize

    @property
    def pixels(self) -> np.ndarray:
        """float32 [H, W, 3] in [0, 1]: a float copy of the whole photo (12 bytes a pixel; for small
        photos, e.g. the run report; `enhance` converts tile by tile instead)."""
        return self.rgb.astype(np.float32) / float(np.iinfo(self.rgb.dtype).max)

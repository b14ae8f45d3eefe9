"""A photo's ICC colour profile: told sRGB or not by what it does, and converted to sRGB with LittleCMS.

An embedded RGB ICC profile that is not sRGB in effect (Display P3, Adobe RGB, ProPhoto) is
converted from (relative colorimetric: colours outside sRGB are clipped), and the output is tagged
with LittleCMS's sRGB profile. LittleCMS in Pillow converts 8-bit RGB only: the 16-bit PNG path
(export/photo_png16.py) keeps such a profile instead. Used by export/photo_files.py.
"""
from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

from phone2dslr.export.photo import PhotoError, _one_line


@functools.lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _other_rgb_profile(icc: bytes) -> tuple[ImageCms.ImageCmsProfile | None, bytes | None]:
    """(the profile when it is an RGB profile that is not sRGB in effect, else None; the profile
    bytes to keep).

    sRGB is told by what the profile does, as at ingestion (components/image_example_gen/
    colour.py): converting a 16-level RGB cube to sRGB moves no value by more than one level.
    Its description is no evidence ("sRGB linear" is not sRGB). One for another colour space
    (grey, CMYK: a mislabelled file) is dropped. Raises PhotoError when LittleCMS cannot read or
    convert from it: the photo's colours are unknown, and ingestion sets such a file aside too."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return None, None
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(64, 64, 3)
        moved = np.asarray(ImageCms.profileToProfile(Image.fromarray(cube, "RGB"), profile, _srgb()),
                           dtype=np.int16) - cube
    except (OSError, ImageCms.PyCMSError, ValueError) as e:
        raise PhotoError(f"its embedded ICC colour profile cannot be read or converted to sRGB "
                         f"({_one_line(e)}), so its colours are unknown") from None
    return (None if np.abs(moved).max() <= 1 else profile), icc


def _to_srgb(icc: bytes) -> tuple[ImageCms.ImageCmsTransform | None, bytes | None]:
    """(8-bit RGB -> sRGB transform, or None when none is needed; the profile the output embeds):
    an RGB profile other than sRGB is converted from, and the output tagged sRGB."""
    profile, keep = _other_rgb_profile(icc)
    if profile is None:
        return None, keep
    transform = ImageCms.buildTransform(profile, _srgb(), "RGB", "RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return transform, _srgb().tobytes()

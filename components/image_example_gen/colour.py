"""Embedded ICC profiles: the pixels are converted to sRGB once, at ingestion.

Downstream code (tf.io.decode_image) ignores profiles and reads every value as sRGB. An iPhone
photo tagged Display P3 paired with an sRGB DSLR photo would then differ by the profile alone, and
the model would learn the profile difference. So any embedded profile is applied here with
LittleCMS (Pillow's ImageCms) and the stored PNG is plain sRGB, counted as `icc:<profile name>`.

A profile that is sRGB in effect (converting through it moves no 8-bit value by more than one, the
rounding) is left alone, so sRGB-tagged JPEGs keep their original bytes. A profile that cannot be
read or does not fit the image (a CMYK profile on an RGB image, a Lab or device-link profile) sets
the file aside as "bad_icc_profile": its colours are unknown, and guessing sRGB is the very error
this module exists to avoid.
"""
from __future__ import annotations

import functools
import io

import numpy as np
from PIL import Image, ImageCms

from phone2dslr.components.image_example_gen.modes import Rejected
from phone2dslr.errors import one_line

INTENT = ImageCms.Intent.PERCEPTUAL  # ImageCms's default; relative colorimetric for matrix/TRC profiles
# NOCACHE: a cached transform keeps the last pixel in shared state, unsafe when Beam threads share it.
FLAGS = ImageCms.Flags.NOCACHE
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
_SPACE_MODE = {"RGB ": "RGB", "GRAY": "L", "CMYK": "CMYK"}  # profile colour space -> 8-bit mode it reads
_TOLERANCE = 1  # 8-bit levels: a transform that moves no value further is sRGB in effect (rounding)


def profile_name(profile: ImageCms.ImageCmsProfile) -> str:
    """The profile's description on one line ("Display P3"), at most 60 characters; "unnamed" if empty."""
    try:
        text = ImageCms.getProfileDescription(profile)
    except Exception:  # noqa: BLE001  (a profile without a description tag is still usable)
        text = ""
    return " ".join((text or "").split())[:60] or "unnamed"


def _probe(mode: str) -> Image.Image:
    """Test pixels in the profile's mode: a 16-level cube for RGB, every level for L, some CMYK inks."""
    if mode == "RGB":
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(64, 64, 3)
        return Image.fromarray(cube, "RGB")
    if mode == "L":
        return Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16), "L")
    return Image.new("CMYK", (4, 4), (0, 0, 0, 0))


@functools.lru_cache(maxsize=16)
def transform_for(icc: bytes) -> tuple[ImageCms.ImageCmsTransform | None, str, str]:
    """(transform to sRGB or None when the profile is sRGB in effect, profile name, mode it reads).

    Cached per profile bytes: a dataset from one camera builds one transform, not one per photo.
    Raises Rejected("bad_icc_profile") when the profile cannot be read or converted from.
    """
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    except Exception as e:  # noqa: BLE001
        raise Rejected("bad_icc_profile", f"the embedded ICC profile cannot be read: {one_line(e)}") from None
    name = profile_name(profile)
    space = profile.profile.xcolor_space
    if space == "Lab ":
        return None, name, "LAB"  # only a Lab image fits it, and modes.to_8bit converted that already
    mode = _SPACE_MODE.get(space)
    if mode is None:
        raise Rejected("bad_icc_profile", f"embedded ICC profile {name!r} is for colour space {space.strip()!r}; "
                       "only RGB, gray and CMYK image profiles can be converted")
    try:
        transform = ImageCms.buildTransform(profile, _SRGB, mode, "RGB", renderingIntent=INTENT, flags=FLAGS)
        probe = _probe(mode)
        out = np.asarray(transform.apply(probe), dtype=np.int16)
    except Exception as e:  # noqa: BLE001  (device links, abstract or broken profiles)
        raise Rejected("bad_icc_profile", f"embedded ICC profile {name!r} cannot be converted to sRGB: "
                       f"{one_line(e)}") from None
    if mode != "CMYK":
        plain = np.asarray(probe.convert("RGB"), dtype=np.int16)
        if np.abs(out - plain).max() <= _TOLERANCE:
            return None, name, mode
    return transform, name, mode


def to_srgb(img: Image.Image, icc: bytes | None, kinds: list[str], source_mode: str = "") -> Image.Image:
    """Applies the embedded profile `icc` to an 8-bit L, LA, RGB, RGBA or CMYK image.

    source_mode: the file's own mode; a Lab profile fits only a LAB file (Pillow writes one into
    them), whose values modes.to_8bit already turned into sRGB.

    Returns the image in sRGB (RGB or RGBA, alpha kept) and appends "icc:<name>" to kinds, or the
    image unchanged when there is no profile or it is sRGB in effect. Raises Rejected("bad_icc_profile")
    for an unreadable profile or one of another colour space than the image (RGB profile on a CMYK
    image, gray profile on an RGB image); a gray image with an RGB profile is read as RGB.
    """
    if not icc:
        return img
    transform, name, mode = transform_for(bytes(icc))
    if mode == "LAB" and source_mode == "LAB":
        return img
    alpha = img.getchannel("A") if img.mode in ("LA", "RGBA") else None
    base = img.convert(img.mode[:-1]) if alpha is not None else img
    if mode == "RGB" and base.mode == "L":
        base = base.convert("RGB")
    if base.mode != mode:
        raise Rejected("bad_icc_profile", f"embedded ICC profile {name!r} is for {mode} data, "
                       f"the image is {source_mode or img.mode}")
    if transform is None:
        return img
    out = transform.apply(base)
    if alpha is not None:
        out.putalpha(alpha)
    kinds.append(f"icc:{name}")
    return out

"""Embedded ICC profiles are converted to sRGB at ingestion, on both sides of a pair and for single images.

The test profile is a real ICC v2 matrix/TRC profile with Display P3's primaries, built byte by
byte (image_example_gen_helpers.icc_profile): no non-sRGB profile ships with Pillow or this system.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageCms

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import colour
from phone2dslr.components.image_example_gen.images import Rejected, decode, whole_bytes
from phone2dslr.components.image_example_gen.layout import IngestOptions, Unit
from phone2dslr.components.image_example_gen.reading import process_unit
from tests.components.image_example_gen_helpers import decode as decode_png
from tests.components.image_example_gen_helpers import dped_dirs, encode, icc_profile, parse_example, pixels, rgb, write

P3 = icc_profile("Display P3 test")
SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
KIND = "icc:Display P3 test"


def _cms(img: Image.Image, icc: bytes, mode: str = "RGB") -> np.ndarray:
    """ImageCms's own conversion of img from the profile to sRGB (its default, perceptual intent)."""
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return np.asarray(ImageCms.profileToProfile(img, profile, SRGB, outputMode=mode))


def test_the_test_profile_is_a_real_p3_profile():
    profile = ImageCms.ImageCmsProfile(io.BytesIO(P3))
    assert colour.profile_name(profile) == "Display P3 test" and profile.profile.xcolor_space == "RGB "
    src = rgb(1)
    assert np.abs(_cms(src, P3).astype(int) - np.asarray(src)).mean() > 3  # a real colour change


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "TIFF", "WEBP"])
def test_p3_tagged_photos_are_converted_to_srgb(fmt):
    src = rgb(2)
    data = encode(src, fmt, icc_profile=P3, **({"lossless": True} if fmt == "WEBP" else {}))
    raw = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))  # what ignoring the profile would store
    d = decode(data)
    assert KIND in d.kinds and d.original is None
    stored = decode_png(whole_bytes(d))
    np.testing.assert_array_equal(stored, _cms(Image.fromarray(raw), P3))
    assert np.abs(stored.astype(int) - raw).mean() > 3


def test_srgb_tagged_photos_keep_their_original_bytes():
    data = encode(rgb(3), "JPEG", icc_profile=SRGB.tobytes())
    d = decode(data)
    assert d.kinds == () and d.original == data


def test_alpha_and_gray_images_with_profiles():
    arr = np.dstack([pixels(4), np.full((24, 24), 255, np.uint8)])
    arr[0, 0, 3] = 0
    d = decode(encode(Image.fromarray(arr, "RGBA"), "PNG", icc_profile=P3))
    out = np.asarray(d.image)
    assert d.kinds == (KIND, "rgba")  # converted with its alpha, then composited on white
    assert out[0, 0].tolist() == [255, 255, 255]  # transparent stays white
    np.testing.assert_array_equal(out[1:], _cms(Image.fromarray(arr[..., :3]), P3)[1:])
    gray = Image.fromarray(pixels(5)[..., 0], "L")
    linear = icc_profile("Gray linear", gamma=1.0, gray=True)
    d = decode(encode(gray, "PNG", icc_profile=linear))
    assert d.kinds == ("grayscale", "icc:Gray linear")
    np.testing.assert_array_equal(np.asarray(d.image), _cms(gray, linear))
    d = decode(encode(gray, "PNG", icc_profile=P3))  # gray values in an RGB space: read as RGB
    np.testing.assert_array_equal(np.asarray(d.image), _cms(gray.convert("RGB"), P3))


@pytest.mark.parametrize("icc, words", [
    (b"not a profile at all", "cannot be read"),
    (icc_profile("Gray linear", gamma=1.0, gray=True), "is for L data, the image is RGB"),
])
def test_unusable_profiles_are_set_aside(icc, words):
    with pytest.raises(Rejected) as e:
        decode(encode(rgb(6), "PNG", icc_profile=icc))
    assert e.value.reason == "bad_icc_profile" and words in e.value.detail and "\n" not in e.value.detail


def test_an_rgb_profile_on_a_cmyk_photo_is_set_aside():
    with pytest.raises(Rejected) as e:
        decode(encode(rgb(6).convert("CMYK"), "JPEG", icc_profile=P3))
    assert e.value.reason == "bad_icc_profile" and "is for RGB data, the image is CMYK" in e.value.detail


def _pair(root, phone_icc: bytes | None, dslr_icc: bytes | None) -> Unit:
    dirs = dped_dirs(root)
    write(dirs["train_phone"] / "0.png", encode(rgb(7), "PNG", **({"icc_profile": phone_icc} if phone_icc else {})))
    write(dirs["train_dslr"] / "0.png", encode(rgb(8), "PNG", **({"icc_profile": dslr_icc} if dslr_icc else {})))
    return Unit("train", "iphone/training_data/0", ("iphone/training_data/iphone/0.png",),
                ("iphone/training_data/canon/0.png",))


def test_both_sides_of_a_pair_and_single_images_are_converted_and_counted(tmp_path):
    unit = _pair(tmp_path, P3, P3)
    result = process_unit(unit, IngestOptions(input_base=str(tmp_path), patch_size=8))
    assert not result.rejects and result.counts[f"normalised.{KIND}"] == 2
    first = parse_example(sorted(result.examples, key=lambda x: parse_example(x[1])[F.PATCH_INDEX])[0][1])
    np.testing.assert_array_equal(decode_png(first[F.PHONE]), _cms(rgb(7), P3)[:8, :8])
    np.testing.assert_array_equal(decode_png(first[F.DSLR]), _cms(rgb(8), P3)[:8, :8])
    single = process_unit(unit, IngestOptions(input_base=str(tmp_path), patch_size=0, pairing="unpaired"))
    assert single.counts[f"normalised.{KIND}"] == 2 and len(single.examples) == 2
    phone = next(parse_example(ex) for _, ex in single.examples if parse_example(ex)[F.DOMAIN] == F.DOMAIN_A)
    np.testing.assert_array_equal(decode_png(phone[F.PHONE]), _cms(rgb(7), P3))


def test_a_bad_profile_sets_the_pair_aside_with_reasons(tmp_path):
    unit = _pair(tmp_path, b"garbage", None)
    result = process_unit(unit, IngestOptions(input_base=str(tmp_path), patch_size=0))
    assert not result.examples
    assert sorted(r["reason"] for r in result.rejects) == ["bad_icc_profile", "partner_rejected"]

"""Decoding and normalising single files: every fixable kind becomes 8-bit RGB, the rest are rejected."""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageFile

from phone2dslr.components.image_example_gen import images
from phone2dslr.components.image_example_gen.images import Rejected, decode, patch_positions
from tests.components.image_example_gen_helpers import encode, pixels, png16, rgb

PNG_MAGIC = b"\x89PNG"


def _as_array(decoded: images.Decoded) -> np.ndarray:
    assert decoded.image.mode == "RGB"
    return np.asarray(decoded.image)


def test_plain_rgb_jpeg_and_png_keep_their_original_bytes():
    for fmt in ("JPEG", "PNG"):
        data = encode(rgb(1), fmt)
        d = decode(data)
        assert d.kinds == () and d.original == data and images.whole_bytes(d) == data


@pytest.mark.parametrize("fmt", ["BMP", "TIFF", "WEBP"])
def test_other_formats_are_reencoded_losslessly_as_png(fmt):
    src = rgb(2)
    d = decode(encode(src, fmt, **({"lossless": True} if fmt == "WEBP" else {})))
    out = images.whole_bytes(d)
    assert d.kinds == ("format",) and out.startswith(PNG_MAGIC)
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(out))), np.asarray(src))


def test_grayscale_becomes_rgb_with_equal_channels():
    gray = Image.fromarray(pixels(3)[..., 0], "L")
    d = decode(encode(gray, "JPEG"))
    arr = _as_array(d)
    assert d.kinds == ("grayscale",) and d.original is None
    assert (arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all()
    assert decode(encode(gray.convert("1"), "PNG")).kinds == ("grayscale",)


def test_rgba_and_la_are_composited_on_white():
    arr = np.zeros((4, 4, 4), np.uint8)
    arr[..., :3] = 10
    arr[0, 0, 3] = 0  # fully transparent -> white
    arr[1, 1, 3] = 255  # opaque -> unchanged
    d = decode(encode(Image.fromarray(arr, "RGBA"), "PNG"))
    out = _as_array(d)
    assert d.kinds == ("rgba",)
    assert out[0, 0].tolist() == [255, 255, 255] and out[1, 1].tolist() == [10, 10, 10]
    la = Image.fromarray(arr[..., [0, 3]], "LA")
    d = decode(encode(la, "PNG"))
    assert d.kinds == ("rgba",) and _as_array(d)[0, 0].tolist() == [255, 255, 255]


def test_palette_with_and_without_transparency():
    pal = rgb(4).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    d = decode(encode(pal, "PNG"))
    assert d.kinds == ("palette",)
    np.testing.assert_array_equal(_as_array(d), np.asarray(pal.convert("RGB")))
    d = decode(encode(pal, "PNG", transparency=int(np.asarray(pal)[0, 0])))
    assert d.kinds == ("palette", "rgba") and _as_array(d)[0, 0].tolist() == [255, 255, 255]


def test_16_bit_grayscale_is_scaled_to_8_bit():
    values = np.array([[0, 257 * 100], [65535, 257 * 200]], np.uint16)
    for img, fmt in ((Image.fromarray(values), "PNG"), (Image.fromarray(values.astype(np.int32), "I"), "TIFF")):
        d = decode(encode(img, fmt))
        assert "16bit" in d.kinds
        assert _as_array(d)[..., 0].tolist() == [[0, 100], [255, 200]]


def test_16_bit_rgb_png_is_reencoded_as_8_bit():
    d = decode(png16(pixels(5, (4, 4)).astype(np.uint16) * 257))
    assert d.kinds == ("16bit",) and d.original is None
    np.testing.assert_array_equal(_as_array(d), pixels(5, (4, 4)))


def test_cmyk_becomes_rgb():
    d = decode(encode(rgb(6).convert("CMYK"), "JPEG"))
    assert d.kinds == ("cmyk",) and d.image.mode == "RGB"


def test_exif_rotation_is_applied():
    img = rgb(7, (24, 16))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    d = decode(encode(img, "PNG", exif=exif))
    assert d.kinds == ("exif_rotated",) and d.size == (16, 24)
    np.testing.assert_array_equal(_as_array(d), np.asarray(img.transpose(Image.Transpose.ROTATE_270)))


def test_truncated_jpeg_is_rejected_not_half_decoded():
    data = encode(rgb(8, (64, 64)), "JPEG", quality=95)
    ImageFile.LOAD_TRUNCATED_IMAGES = True  # even if another library switched it on
    try:
        with pytest.raises(Rejected) as e:
            decode(data[: len(data) // 2])
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = False
    assert e.value.reason == "truncated"


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_file"),
    (b"<html>not found</html>", "not_an_image"),
])
def test_non_images_are_rejected(data, reason):
    with pytest.raises(Rejected) as e:
        decode(data)
    assert e.value.reason == reason and "\n" not in e.value.detail


def test_corrupt_png_is_rejected():
    data = bytearray(encode(rgb(9), "PNG"))
    i = data.index(b"IDAT") + 10
    data[i:i + 20] = bytes(20)
    with pytest.raises(Rejected) as e:
        decode(bytes(data))
    assert e.value.reason in ("corrupt", "truncated")


def test_multi_page_files_use_the_first_page():
    first, second = rgb(11), rgb(12)
    d = decode(encode(first, "TIFF", save_all=True, append_images=[second]))
    assert d.kinds == ("multi_frame", "format")
    np.testing.assert_array_equal(_as_array(d), np.asarray(first))


def test_decompression_bombs_are_rejected(monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(Rejected) as e:
        decode(encode(rgb(13, (24, 24)), "PNG"))
    assert e.value.reason == "too_large"


def test_patch_positions_grid_random_and_too_small():
    assert patch_positions(24, 24, 8, 8, 0, seed=0) == [(x, y) for y in (0, 8, 16) for x in (0, 8, 16)]
    assert len(patch_positions(24, 16, 8, 4, 0, seed=0)) == 5 * 3
    rand = patch_positions(24, 24, 8, 8, 5, seed=42)
    assert len(rand) == 5 and rand == patch_positions(24, 24, 8, 8, 5, seed=42)
    assert rand != patch_positions(24, 24, 8, 8, 5, seed=43)
    assert all(0 <= x <= 16 and 0 <= y <= 16 for x, y in rand)
    assert patch_positions(6, 24, 8, 8, 0, seed=0) == []


def test_patch_covering_the_whole_image_keeps_original_bytes():
    data = encode(rgb(10, (8, 8)), "JPEG")
    assert images.crop_bytes(decode(data), 0, 0, 8) == data
    assert images.crop_bytes(decode(encode(rgb(10, (16, 8)), "JPEG")), 0, 0, 8).startswith(PNG_MAGIC)

"""Photo files in and out (export/photo_files.py), on real files: size ceiling, bit depth, alpha, grey,
orientation, ICC profiles. No model here: test_enhance*.py run these files through the CLI."""
import io
import os
import warnings

import numpy as np
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps

from phone2dslr.export import photo_files
from phone2dslr.export.photo_files import PhotoError, read_photo, write_photo
from tests.export.photo_helpers import SRGB, gradient16, icc_profile, read_png, write_png16

ORIENTATION, MAKE = ExifTags.Base.Orientation, ExifTags.Base.Make


def _noise(h, w, channels=3, seed=0, dtype=np.uint8):
    top = np.iinfo(dtype).max
    return np.random.default_rng(seed).integers(0, top + 1, (h, w, channels), dtype=np.uint32).astype(dtype)


def _description(icc: bytes) -> str:
    return ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(icc))).strip()


# ---------------------------------------------------------------------------------------------
# Item 5: the pixel ceiling is ours (--max-pixels), not Pillow's decompression-bomb limit.

@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_a_photo_above_max_pixels_is_refused_in_one_line(tmp_path, fmt):
    path = tmp_path / f"big.{fmt.lower()}"
    Image.fromarray(_noise(200, 300)).save(path, format=fmt)
    with pytest.raises(PhotoError) as caught:
        read_photo(str(path), max_pixels=10_000)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("300 x 200 = 60000 pixels (0.06 MP) is above --max-pixels 10000; pass "
                              "--max-pixels 60000 or more (0: no limit)")
    assert read_photo(str(path), max_pixels=60_000).rgb.shape == (200, 300, 3)  # exactly at the ceiling
    assert read_photo(str(path), max_pixels=0).rgb.shape == (200, 300, 3)  # 0: no limit


def test_pillows_bomb_limit_does_not_refuse_what_max_pixels_allows(tmp_path, monkeypatch):
    """Pillow refuses above 2 x Image.MAX_IMAGE_PIXELS (a 200 MP photo with its default) and warns above
    it; with the limit lowered, a 200 x 200 photo stands for such a photo."""
    path = tmp_path / "huge.jpg"
    Image.fromarray(_noise(200, 200)).save(path, quality=90)
    for pillow_limit in (15_000, 30_000):  # 40,000 pixels: above 2x (an error), above 1x (a warning)
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", pillow_limit)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # the DecompressionBombWarning too
            with pytest.raises((Image.DecompressionBombError, Image.DecompressionBombWarning)):
                Image.open(path)  # what the enhance of old ran into
            photo = read_photo(str(path), max_pixels=40_000)
        assert photo.rgb.shape == (200, 200, 3) and photo.rgb.dtype == np.uint8
        assert Image.MAX_IMAGE_PIXELS == pillow_limit  # restored for the rest of the process
        with pytest.raises(PhotoError, match="above --max-pixels 39999"):
            read_photo(str(path), max_pixels=39_999)


def test_samples_stay_8_bit_and_are_read_exactly(tmp_path):
    pixels = _noise(37, 53)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    photo = read_photo(str(tmp_path / "a.png"))
    assert photo.rgb.dtype == np.uint8 and photo.bits == 8 and photo.alpha is None
    np.testing.assert_array_equal(photo.rgb, pixels)
    np.testing.assert_array_equal(photo.pixels, pixels / np.float32(255))  # the float view, for the run report
    assert photo.pixels.dtype == np.float32


def test_strips_join_exactly(tmp_path, monkeypatch):
    """Pillow -> numpy goes strip by strip (no second full copy of a huge photo); the seams are exact."""
    monkeypatch.setattr(photo_files, "_STRIP_BYTES", 4 * 53 * 5)  # 5 rows a strip, the last one shorter
    pixels = _noise(37, 53, channels=4, seed=3)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    photo = read_photo(str(tmp_path / "a.png"))
    np.testing.assert_array_equal(photo.rgb, pixels[..., :3])
    np.testing.assert_array_equal(photo.alpha, pixels[..., 3])


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_as_pillow_applies_it(tmp_path, orientation):
    stored = _noise(24, 40, channels=4, seed=orientation)
    exif = Image.Exif()
    exif[ORIENTATION], exif[MAKE] = orientation, "TestPhone"
    Image.fromarray(stored).save(tmp_path / "o.png", exif=exif.tobytes())
    photo = read_photo(str(tmp_path / "o.png"))
    with Image.open(tmp_path / "o.png") as im:
        upright = np.asarray(ImageOps.exif_transpose(im))
    np.testing.assert_array_equal(photo.rgb, upright[..., :3])
    np.testing.assert_array_equal(photo.alpha, upright[..., 3])
    kept = Image.Exif()
    kept.load(photo.exif)
    assert ORIENTATION not in kept and kept[MAKE] == "TestPhone"


# ---------------------------------------------------------------------------------------------
# Item 6: bit depth, alpha, grey and ICC profiles kept (or converted as documented).

def test_a_16_bit_png_keeps_its_16_bits_in_and_out(tmp_path):
    samples = gradient16()
    write_png16(tmp_path / "g.png", samples)
    photo = read_photo(str(tmp_path / "g.png"))
    assert photo.rgb.dtype == np.uint16 and photo.bits == 16
    np.testing.assert_array_equal(photo.rgb, samples)
    assert len(np.unique(photo.rgb[..., 0])) == 1024  # Pillow alone: 256 at most
    exif = Image.Exif()
    exif[MAKE] = "DeepPhone"
    photo.exif, photo.icc_profile = exif.tobytes(), icc_profile("Test sRGB", SRGB)
    write_photo(str(tmp_path / "out.png"), photo)
    back, info = read_png(tmp_path / "out.png")
    assert info["bitdepth"] == 16 and info["planes"] == 3
    np.testing.assert_array_equal(back, samples)
    with Image.open(tmp_path / "out.png") as im:  # the chunks pypng cannot write are there, and valid
        assert im.info["icc_profile"] == photo.icc_profile and im.getexif()[MAKE] == "DeepPhone"


@pytest.mark.parametrize("depth", [8, 16])
def test_alpha_is_passed_through_exactly(tmp_path, depth):
    dtype = np.uint8 if depth == 8 else np.uint16
    rgba = _noise(31, 45, channels=4, seed=depth, dtype=dtype)
    rgba[:10, :, 3] = 0  # fully transparent rows: their colour is kept (enhanced as it is), not blackened
    if depth == 8:
        Image.fromarray(rgba).save(tmp_path / "a.png")
    else:
        write_png16(tmp_path / "a.png", rgba[..., :3], rgba[..., 3])
    photo = read_photo(str(tmp_path / "a.png"))
    assert photo.rgb.dtype == dtype and photo.alpha.dtype == dtype
    np.testing.assert_array_equal(photo.rgb, rgba[..., :3])
    np.testing.assert_array_equal(photo.alpha, rgba[..., 3])
    write_photo(str(tmp_path / "out.png"), photo)
    back, info = read_png(tmp_path / "out.png")
    assert info["alpha"] and info["bitdepth"] == depth
    np.testing.assert_array_equal(back, rgba)


def test_palette_and_trns_transparency_become_alpha(tmp_path):
    pixels = _noise(20, 30, seed=4) // 64 * 64  # few colours: a palette holds them all
    Image.fromarray(pixels).convert("P").save(tmp_path / "p.png", transparency=0)
    Image.fromarray(pixels).save(tmp_path / "t.png", transparency=(0, 0, 0))  # RGB with a tRNS colour
    for name in ("p.png", "t.png"):
        with Image.open(tmp_path / name) as im:
            expected = np.asarray(im.convert("RGBA"))
        photo = read_photo(str(tmp_path / name))
        assert (expected[..., 3] == 0).any() and (expected[..., 3] == 255).any()
        np.testing.assert_array_equal(photo.rgb, expected[..., :3])
        np.testing.assert_array_equal(photo.alpha, expected[..., 3])


@pytest.mark.parametrize("depth", [8, 16])
def test_grey_is_enhanced_and_written_as_rgb_of_its_depth(tmp_path, depth):
    dtype = np.uint8 if depth == 8 else np.uint16
    grey = _noise(21, 33, channels=1, seed=5, dtype=dtype)[..., 0]
    if depth == 8:
        Image.fromarray(grey).save(tmp_path / "g.png")
    else:
        write_png16(tmp_path / "g.png", grey)
    photo = read_photo(str(tmp_path / "g.png"))
    assert photo.rgb.shape == (21, 33, 3) and photo.rgb.dtype == dtype and photo.alpha is None
    for channel in range(3):
        np.testing.assert_array_equal(photo.rgb[..., channel], grey)
    write_photo(str(tmp_path / "out.png"), photo)
    back, info = read_png(tmp_path / "out.png")
    assert not info["greyscale"] and info["bitdepth"] == depth
    np.testing.assert_array_equal(back, np.repeat(grey[..., None], 3, -1))


def test_a_non_srgb_profile_is_converted_to_srgb_and_the_output_tagged_srgb(tmp_path):
    adobe = icc_profile("Test Adobe RGB (1998)")
    pixels = _noise(20, 30, seed=6)
    Image.fromarray(pixels).save(tmp_path / "a.jpg", icc_profile=adobe, quality=95)
    with Image.open(tmp_path / "a.jpg") as im:
        decoded = np.asarray(im)
        expected = np.asarray(ImageCms.profileToProfile(
            im, ImageCms.ImageCmsProfile(io.BytesIO(adobe)), ImageCms.createProfile("sRGB"),
            renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC, outputMode="RGB"))
    photo = read_photo(str(tmp_path / "a.jpg"))
    np.testing.assert_array_equal(photo.rgb, expected)
    assert np.abs(photo.rgb.astype(int) - decoded).max() > 10  # a wider gamut: the numbers do change
    assert _description(photo.icc_profile) == "sRGB built-in" and not photo.notes
    write_photo(str(tmp_path / "out.jpg"), photo)
    with Image.open(tmp_path / "out.jpg") as im:
        assert _description(im.info["icc_profile"]) == "sRGB built-in"


def test_an_srgb_profile_is_kept_byte_for_byte(tmp_path):
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()  # LittleCMS' own sRGB
    pixels = _noise(20, 30, seed=7)
    Image.fromarray(pixels).save(tmp_path / "s.png", icc_profile=srgb)
    photo = read_photo(str(tmp_path / "s.png"))
    np.testing.assert_array_equal(photo.rgb, pixels)  # no conversion
    assert photo.icc_profile == srgb


def test_a_profile_of_another_colour_space_is_dropped(tmp_path):
    pixels = _noise(20, 30, seed=9)
    lab = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()  # a mislabelled RGB file
    Image.fromarray(pixels).save(tmp_path / "lab.png", icc_profile=lab)
    photo = read_photo(str(tmp_path / "lab.png"))
    np.testing.assert_array_equal(photo.rgb, pixels)
    assert photo.icc_profile is None


def test_a_16_bit_photo_with_another_profile_keeps_it_and_says_so(tmp_path):
    adobe = icc_profile("Test Adobe RGB (1998)")
    samples = gradient16()
    write_png16(tmp_path / "g.png", samples, icc=adobe)
    photo = read_photo(str(tmp_path / "g.png"))
    np.testing.assert_array_equal(photo.rgb, samples)  # not converted: LittleCMS in Pillow is 8-bit only
    assert photo.icc_profile == adobe
    assert photo.notes == ["16-bit with the ICC profile 'Test Adobe RGB (1998)', which is not sRGB: enhanced "
                           "without colour conversion (LittleCMS in Pillow converts 8-bit only), profile kept"]


def test_a_16_bit_write_fault_leaves_no_temporary(tmp_path):
    write_png16(tmp_path / "g.png", gradient16())
    photo = read_photo(str(tmp_path / "g.png"))
    (tmp_path / "out" / "g.png").mkdir(parents=True)
    with pytest.raises(PhotoError, match=r"^cannot write .*g\.png: Is a directory$"):
        write_photo(str(tmp_path / "out" / "g.png"), photo)
    assert os.listdir(tmp_path / "out") == ["g.png"]


def test_srgb_is_told_by_what_the_profile_does_not_its_name(tmp_path):
    """A linear-gamma profile with sRGB primaries is not sRGB, whatever its description says
    (ingestion decides the same way: components/image_example_gen/colour.py)."""
    pixels = np.tile(np.arange(0, 256, 4, dtype=np.uint8)[None, :, None], (8, 1, 3))
    outs = []
    for name in ("sRGB linear", "Linear RGB"):
        path = tmp_path / f"{name.replace(' ', '_')}.png"
        Image.fromarray(pixels).save(path, icc_profile=icc_profile(name, SRGB, gamma=1.0))
        photo = photo_files.read_photo(str(path))
        assert _description(photo.icc_profile) == "sRGB built-in", name  # converted, tagged sRGB
        outs.append(np.asarray(photo.rgb))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert np.abs(outs[0].astype(int) - pixels).max() > 10  # the conversion did move the values


def test_an_unreadable_profile_is_a_photo_error_not_a_guess(tmp_path):
    path = tmp_path / "bad.png"
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(path, icc_profile=b"not an ICC profile at all" * 8)
    with pytest.raises(photo_files.PhotoError, match="ICC colour profile cannot be read"):
        photo_files.read_photo(str(path))

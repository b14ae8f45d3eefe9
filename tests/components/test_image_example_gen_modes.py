"""Every image mode Pillow opens, from a real file: correct 8-bit values, or set aside with a reason.

Pillow's own convert() clips 16/32-bit gray to white and turns [0, 1] floats black; these tests pin
the scaled values (v * 255 / white, rounded) so neither can come back.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from phone2dslr import features as F
from phone2dslr.components.image_example_gen.images import Rejected, decode
from phone2dslr.components.image_example_gen.layout import IngestOptions, Unit
from phone2dslr.components.image_example_gen.reading import process_unit
from tests.components.image_example_gen_helpers import decode as decode_png
from tests.components.image_example_gen_helpers import dped_dirs, encode, parse_example, pixels, png16, rgb, write

GRAY = pixels(1, (6, 4))[..., 0]  # (4, 6) uint8
ALPHA = np.tile(np.array([0, 255, 128, 0, 255, 64], np.uint8), (4, 1))


def _rgb(data: bytes) -> tuple[np.ndarray, tuple[str, ...]]:
    d = decode(data)
    assert d.image.mode == "RGB"
    return np.asarray(d.image), d.kinds


def _gray3(values: np.ndarray) -> np.ndarray:
    return np.repeat(values[..., None], 3, axis=-1)


def _on_white(colour: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What a viewer shows: colour over white by alpha, in 8 bits (Pillow's alpha_composite rounding)."""
    a = alpha[..., None].astype(np.int32)
    return ((colour.astype(np.int32) * a + 255 * (255 - a) + 127) // 255).astype(np.uint8)


def test_bilevel_and_gray():
    bilevel = Image.fromarray(GRAY > 127)
    out, kinds = _rgb(encode(bilevel, "PNG"))
    assert kinds == ("grayscale",) and set(np.unique(out)) == {0, 255}
    np.testing.assert_array_equal(out, _gray3(np.where(GRAY > 127, 255, 0).astype(np.uint8)))
    out, kinds = _rgb(encode(Image.fromarray(GRAY, "L"), "PNG"))
    assert kinds == ("grayscale",)
    np.testing.assert_array_equal(out, _gray3(GRAY))


@pytest.mark.parametrize("alpha_mode", ["LA", "RGBA"])
def test_alpha_modes_are_composited_on_white(alpha_mode):
    colour = pixels(2, (6, 4)) if alpha_mode == "RGBA" else _gray3(GRAY)
    arr = np.dstack([colour, ALPHA]) if alpha_mode == "RGBA" else np.dstack([GRAY, ALPHA])
    out, kinds = _rgb(encode(Image.fromarray(arr, alpha_mode), "PNG"))
    assert kinds == ("rgba",)
    assert np.abs(out.astype(int) - _on_white(colour, ALPHA)).max() <= 1
    assert (out[ALPHA == 0] == 255).all()


def test_palette_with_and_without_transparency_and_palette_alpha():
    pal = rgb(3, (6, 4)).convert("P", palette=Image.Palette.ADAPTIVE, colors=8)
    colours = np.asarray(pal.convert("RGB"))
    out, kinds = _rgb(encode(pal, "PNG"))
    assert kinds == ("palette",)
    np.testing.assert_array_equal(out, colours)
    clear = int(np.asarray(pal)[0, 0])
    out, kinds = _rgb(encode(pal, "PNG", transparency=clear))
    assert kinds == ("palette", "rgba")
    np.testing.assert_array_equal(out[np.asarray(pal) == clear], 255)
    np.testing.assert_array_equal(out[np.asarray(pal) != clear], colours[np.asarray(pal) != clear])
    pa = pal.convert("PA")  # Pillow writes PA to TIFF only
    pa.putalpha(Image.fromarray(ALPHA, "L"))
    out, kinds = _rgb(encode(pa, "TIFF"))
    assert kinds == ("palette", "rgba", "format")
    assert np.abs(out.astype(int) - _on_white(colours, ALPHA)).max() <= 1


def test_rgb_is_kept_as_is_and_cmyk_jpeg_becomes_rgb():
    data = encode(rgb(4, (6, 4)), "PNG")
    d = decode(data)
    assert d.kinds == () and d.original == data
    cmyk = encode(rgb(4, (6, 4)).convert("CMYK"), "JPEG", quality=100)
    out, kinds = _rgb(cmyk)
    assert kinds == ("cmyk",)
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(cmyk)).convert("RGB")))


SIXTEEN = np.array([[0, 130, 33281, 40000, 65535, 257 * 100]], np.uint16)  # 130: high byte 0, scaled 1
SCALED = np.round(SIXTEEN / 257).astype(np.uint8)  # [0, 1, 129, 156, 255, 100]


def test_16_bit_gray_png_is_scaled_not_clipped():
    out, kinds = _rgb(encode(Image.fromarray(SIXTEEN), "PNG"))
    assert kinds == ("16bit",)
    np.testing.assert_array_equal(out, _gray3(SCALED))


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_16_bit_colour_pngs_are_scaled_exactly(channels):
    """Pillow keeps the high byte of 16-bit colour PNGs (130 -> 0, 33281 -> 130); the stored value is v/257."""
    opaque = np.full_like(SIXTEEN, 65535)
    colour = [SIXTEEN] if channels == 2 else [SIXTEEN, SIXTEEN[:, ::-1], SIXTEEN]
    values = np.stack(colour + ([opaque] if channels != 3 else []), -1)
    out, kinds = _rgb(png16(values))
    assert kinds == (("16bit",) if channels == 3 else ("16bit", "rgba"))
    expected = np.round(np.stack(colour * (3 if channels == 2 else 1), -1) / 257).astype(np.uint8)
    np.testing.assert_array_equal(out, expected)


def test_32_bit_integer_tiff_is_scaled_by_its_range():
    values = np.array([[0, 1 << 20, 1 << 30, 2**31 - 1]], np.int32)
    out, kinds = _rgb(encode(Image.fromarray(values, "I"), "TIFF"))
    assert kinds == ("32bit", "format")
    np.testing.assert_array_equal(out, _gray3(np.round(values / (2**31 - 1) * 255).astype(np.uint8)))
    assert out[0, 2, 0] == 128  # half the range is mid-gray, not white
    # 16-bit data in a 32-bit file (as tools that widen I;16 write it) keeps its 16-bit white.
    out, kinds = _rgb(encode(Image.fromarray(SIXTEEN.astype(np.int32), "I"), "TIFF"))
    assert kinds == ("16bit", "format")
    np.testing.assert_array_equal(out, _gray3(SCALED))


def test_float_tiff_in_0_1_is_scaled_and_others_are_set_aside():
    values = np.array([[0.0, 0.25, 0.5, 1.0]], np.float32)
    out, kinds = _rgb(encode(Image.fromarray(values, "F"), "TIFF"))
    assert kinds == ("float", "format")
    np.testing.assert_array_equal(out, _gray3(np.array([[0, 64, 128, 255]], np.uint8)))
    for bad, words in ((np.array([[0.0, 3.5]], np.float32), "span [0, 3.5]"),
                       (np.array([[0.0, np.nan]], np.float32), "NaN")):
        with pytest.raises(Rejected) as e:
            decode(encode(Image.fromarray(bad, "F"), "TIFF"))
        assert e.value.reason == "unsupported_values" and words in e.value.detail


def test_negative_integer_samples_are_set_aside():
    with pytest.raises(Rejected) as e:
        decode(encode(Image.fromarray(np.array([[-5, 70000]], np.int32), "I"), "TIFF"))
    assert e.value.reason == "unsupported_values" and "negative" in e.value.detail


def test_lab_tiff_becomes_rgb_with_its_lab_profile_accepted():
    src = rgb(5, (6, 4))
    data = encode(src.convert("LAB"), "TIFF")  # Pillow embeds a Lab profile
    assert Image.open(io.BytesIO(data)).info.get("icc_profile")
    out, kinds = _rgb(data)
    assert kinds == ("other_mode", "format")
    np.testing.assert_array_equal(out, np.asarray(Image.open(io.BytesIO(data)).convert("RGB")))
    assert np.abs(out.astype(int) - np.asarray(src)).mean() < 3  # 8-bit Lab rounds saturated colours


def test_stored_examples_carry_the_scaled_values(tmp_path):
    """Through process_unit: what is written to the tf.Example decodes to the scaled values."""
    dirs = dped_dirs(tmp_path)
    values = np.tile(np.array([[0, 1 << 29, 1 << 30, 2**31 - 1]], np.int32), (4, 1))
    write(dirs["train_phone"] / "0.tif", encode(Image.fromarray(values, "I"), "TIFF"))
    write(dirs["train_dslr"] / "0.tif", encode(Image.fromarray((values / (2**31 - 1)).astype(np.float32), "F"), "TIFF"))
    unit = Unit("train", "iphone/training_data/0", ("iphone/training_data/iphone/0.tif",),
                ("iphone/training_data/canon/0.tif",))
    result = process_unit(unit, IngestOptions(input_base=str(tmp_path), patch_size=0))
    assert not result.rejects and result.counts["normalised.32bit"] == 1 and result.counts["normalised.float"] == 1
    (_, example), = result.examples
    e = parse_example(example)
    expected = _gray3(np.round(values / (2**31 - 1) * 255).astype(np.uint8))
    np.testing.assert_array_equal(decode_png(e[F.PHONE]), expected)
    np.testing.assert_array_equal(decode_png(e[F.DSLR]), expected)

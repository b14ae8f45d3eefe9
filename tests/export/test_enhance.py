"""`phone2dslr enhance`: photos in, enhanced photos out; bad files reported and skipped; EXIF kept upright."""
import os

import numpy as np
import pytest
import tf_keras as keras
from PIL import ExifTags, Image

from phone2dslr.export import enhance
from phone2dslr.trainer.serving import export_image_generator
from phone2dslr.export.tflite_convert import convert
from phone2dslr import cli
from phone2dslr.trainer import dped

ORIENTATION, MAKE = ExifTags.Base.Orientation, ExifTags.Base.Make


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    keras.utils.set_random_seed(3)
    root = tmp_path_factory.mktemp("model")
    saved_model = str(root / "saved_model")
    generator = dped.build_generator(filters=8, head="tanh")
    export_image_generator(generator, saved_model)
    tflite = str(root / "float32.tflite")
    with open(tflite, "wb") as f:
        f.write(convert(saved_model, "float32"))
    return {"saved_model": saved_model, "tflite": tflite, "keras": generator}


def _pixels(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _blocks(h, w):
    """Flat colour quadrants (survive JPEG): red top-left, green top-right, blue bottom-left, grey else."""
    a = np.full((h, w, 3), 128, np.uint8)
    a[: h // 2, : w // 2] = (255, 0, 0)
    a[: h // 2, w // 2:] = (0, 255, 0)
    a[h // 2:, : w // 2] = (0, 0, 255)
    return a


def _rotated_jpeg(path, stored):
    """A JPEG stored sideways, EXIF Orientation 6 (rotate 90 degrees clockwise to view), with a Make tag."""
    exif = Image.Exif()
    exif[ORIENTATION] = 6
    exif[MAKE] = "TestPhone"
    Image.fromarray(stored).save(path, quality=95, exif=exif.tobytes())


def test_exif_orientation_is_applied_to_the_pixels(tmp_path):
    stored = _blocks(24, 40)
    _rotated_jpeg(tmp_path / "side.jpg", stored)
    photo = enhance.read_photo(str(tmp_path / "side.jpg"))
    assert photo.pixels.shape == (40, 24, 3)  # upright: taller than wide
    upright = np.rot90(stored, k=-1) / 255.0  # stored bottom-left (blue) is now top-left
    for y, x in ((10, 6), (10, 18), (30, 6), (30, 18)):  # quadrant centres (JPEG blurs the edges)
        np.testing.assert_allclose(photo.pixels[y, x], upright[y, x], atol=0.05)
    np.testing.assert_allclose(photo.pixels[10, 6], [0, 0, 1], atol=0.05)
    exif = Image.Exif()
    exif.load(photo.exif)
    assert ORIENTATION not in exif and exif[MAKE] == "TestPhone"


def test_cli_reports_and_skips_bad_files(models, tmp_path, capsys):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    _rotated_jpeg(photos / "a_side.jpg", _blocks(24, 40))
    Image.fromarray(_pixels(30, 50)).save(photos / "b.png")
    (photos / "c_corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not a JPEG")
    whole = (photos / "a_side.jpg").read_bytes()
    (photos / "d_truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (photos / "notes.txt").write_text("not a photo")

    rc = cli.main(["enhance", str(photos), "--model", models["tflite"], "--out", str(out),
                   "--tile", "40", "--quality", "90", "--no-progress"])
    captured = capsys.readouterr()
    assert rc == 1  # the good photos are written, but any failure is an exit status
    assert sorted(os.listdir(out)) == ["a_side.jpg", "b.png"]
    skipped = [line for line in captured.err.splitlines() if line.startswith("skipped ")]
    assert len(skipped) == 2
    assert any("c_corrupt.jpg: cannot decode" in line for line in skipped)
    assert any("d_truncated.jpg: cannot decode" in line for line in skipped)
    assert "enhanced 2 of 4 photo(s)" in captured.out and "2 failed" in captured.out
    assert "1 non-JPEG/PNG file(s) ignored" in captured.out

    with Image.open(out / "a_side.jpg") as im:  # stored upright, orientation tag dropped, EXIF kept
        assert im.format == "JPEG" and im.size == (24, 40)
        exif = im.getexif()
        assert ORIENTATION not in exif and exif[MAKE] == "TestPhone"
    with Image.open(out / "b.png") as im:
        assert im.format == "PNG" and im.size == (50, 30)


def test_nothing_enhanced_exits_nonzero(models, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    assert cli.main(["enhance", str(bad), "--model", models["tflite"], "--out", str(tmp_path / "o"),
                     "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "skipped" in captured.err and "enhanced 0 of 1" in captured.out
    assert cli.main(["enhance", str(bad), "--model", str(tmp_path / "none.tflite"), "--out",
                     str(tmp_path / "o")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"error: model {tmp_path / 'none.tflite'} does not exist; pass a .tflite file, a SavedModel folder "
        "(with saved_model.pb) or a TF1 checkpoint prefix (e.g. models_orig/iphone_orig)")


@pytest.mark.parametrize("kind", ["saved_model", "tflite"])
def test_tiled_output_equals_whole_image_output(models, kind):
    enhancer = enhance.load_enhancer(models[kind])
    assert enhancer.radius == 18  # read off the exported graph (tiling.graph_radius / tflite_radius)
    image = _pixels(70, 90).astype(np.float32) / 255.0
    ticks = []
    tiled = enhancer(image, tile=40, on_tile=lambda: ticks.append(1))
    assert len(ticks) == enhancer.tiles(70, 90, 40) > 1
    whole = enhancer(image, tile=0)
    np.testing.assert_allclose(tiled, whole, atol=1e-5)
    np.testing.assert_allclose(whole, np.clip(models["keras"](image[np.newaxis]).numpy(), 0, 1), atol=1e-4)


def test_output_never_overwrites_the_input(models, tmp_path, capsys):
    Image.fromarray(_pixels(20, 20)).save(tmp_path / "x.png")
    before = (tmp_path / "x.png").read_bytes()
    assert cli.main(["enhance", str(tmp_path / "x.png"), "--model", models["tflite"], "--out", str(tmp_path),
                     "--no-progress"]) == 2  # an argument mistake: caught before any photo
    assert "its enhanced photo would replace it" in capsys.readouterr().err
    assert (tmp_path / "x.png").read_bytes() == before
    # a hard link slips past the up-front check (another name, one file): the photo is still refused
    (tmp_path / "out").mkdir()
    os.link(tmp_path / "x.png", tmp_path / "out" / "x.png")
    summary = enhance.enhance_files([str(tmp_path / "out" / "x.png")], enhance.load_enhancer(models["tflite"]),
                                    str(tmp_path), progress=False)
    assert summary.failed and "overwrite the input" in summary.failed[0][1]
    assert (tmp_path / "x.png").read_bytes() == before


def _float_path_of_old(enhancer, samples, tile):
    """What enhance wrote before photos stayed integer: the whole photo as float32 / max, enhanced,
    clipped, then * max and rounded."""
    top = float(np.iinfo(samples.dtype).max)
    out = enhancer(samples.astype(np.float32) / top, tile=tile)[0]
    return np.round(np.clip(out, 0.0, 1.0) * top).astype(samples.dtype)


@pytest.mark.parametrize("kind, tile", [("tflite", 40), ("saved_model", 40), ("tflite", 0)])
def test_integer_photos_give_the_pixels_of_the_float_path(models, tmp_path, kind, tile):
    """The photo stays uint8/uint16 and only tiles become float32; on an awkward size (97 x 131: uneven
    tiles) the pixels are exactly those of the float32 photo of old."""
    enhancer = enhance.load_enhancer(models[kind])
    pixels = _pixels(97, 131, seed=2)
    expected = _float_path_of_old(enhancer, pixels, tile)
    samples = enhancer(pixels, tile=tile, dtype=np.uint8)[0]
    assert samples.dtype == np.uint8
    np.testing.assert_array_equal(samples, expected)
    deep = (pixels.astype(np.uint16) * 257) ^ 0x5A  # 16-bit with the low byte used
    np.testing.assert_array_equal(enhancer(deep, tile=tile, dtype=np.uint16)[0],
                                  _float_path_of_old(enhancer, deep, tile))
    # ... and so are the files: a PNG in, through enhance_files, a PNG out
    Image.fromarray(pixels).save(tmp_path / "odd.png")
    summary = enhance.enhance_files([str(tmp_path / "odd.png")], enhancer, str(tmp_path / "out"), tile=tile,
                                    progress=False)
    assert not summary.failed
    with Image.open(tmp_path / "out" / "odd.png") as im:
        np.testing.assert_array_equal(np.asarray(im), expected)

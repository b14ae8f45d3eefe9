"""`phone2dslr enhance` as a user runs it: argument mistakes and write faults, in real processes.

Every argument mistake (issue 13, item 7) must end before any work with one line on stderr that says
what to pass instead, and exit status 2. A write fault (item 11: a full disk, an output folder that
turns unwritable, a directory in the way) must leave no partial file, report the photo in one line,
go on with the next one, count the failures and exit 1.

Photos as files (items 5 and 6): a photo above --max-pixels is skipped in one line that names the
option and its size; 16-bit PNGs come out 16-bit, alpha comes out unchanged, grey comes out RGB of
its depth, and a non-sRGB profile is converted to sRGB and tagged so (export/photo_files.py).

The CLI runs as a subprocess (its own exit status and stderr, no pytest capture in between). The
model is tiny (two convs, receptive-field radius 5) and laid out as the pipeline's ModelPusher lays
out a version: `<serving>/<version>/saved_model.pb` and `<serving>/<version>/tflite/float32.tflite`.
The faults are real: a size-limited tmpfs and a read-only remount (root, which the tests run as in
CI and for which chmod stops nothing), or a read-only mode (anyone else), a directory or a file in
the output's way.
"""
from __future__ import annotations

import contextlib
import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tf_keras as keras
from PIL import Image, ImageCms

from phone2dslr.export import enhance
from phone2dslr.export.tflite_convert import convert
from phone2dslr.trainer.serving import export_image_generator
from tests.export.photo_helpers import gradient16, icc_profile, read_png, write_png16

VERSION = "1700000000"
RADIUS = 5  # 9x9 conv (4) then 3x3 conv (1)
CLI = [sys.executable, "-c", "import sys; from phone2dslr.cli import main; sys.exit(main())"]


@pytest.fixture(scope="module")
def serving(tmp_path_factory) -> pathlib.Path:
    """A serving folder with one version of a tiny generator: SavedModel and tflite/float32.tflite."""
    keras.utils.set_random_seed(5)
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(4, 9, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(x)
    root = tmp_path_factory.mktemp("serving")
    version = root / VERSION
    export_image_generator(keras.Model(image, x, name="tiny"), str(version))
    (version / "tflite").mkdir()
    (version / "tflite" / "float32.tflite").write_bytes(convert(str(version), "float32"))
    return root


def _tflite(serving: pathlib.Path) -> str:
    return str(serving / VERSION / "tflite" / "float32.tflite")


def _enhance(*args: str | os.PathLike, cwd: pathlib.Path) -> subprocess.CompletedProcess:
    """`phone2dslr enhance ARGS` in its own process, run from `cwd` (paths in messages stay short)."""
    return subprocess.run(CLI + ["enhance", *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def _flat(path: pathlib.Path, value: int, size: tuple[int, int] = (40, 40)) -> None:
    Image.fromarray(np.full(size + (3,), value, np.uint8)).save(path)


def _noise(path: pathlib.Path, size: tuple[int, int], seed: int = 0) -> None:
    """A PNG that compresses badly (and so does its enhanced version): tens of kB on disk."""
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, size + (3,), dtype=np.uint8)).save(path)


@pytest.fixture
def photos(tmp_path: pathlib.Path) -> pathlib.Path:
    """tmp_path with photos/ (a.jpg, b.png), notes/ (no photo), nested/inner/ (photos one level down),
    a plain file, a JPEG named .tflite and a checkpoint's two files; the tests run the CLI from here."""
    (tmp_path / "photos").mkdir()
    _flat(tmp_path / "photos" / "a.jpg", 100)
    _flat(tmp_path / "photos" / "b.png", 150)
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "readme.txt").write_text("no photo here")
    (tmp_path / "nested" / "inner").mkdir(parents=True)
    _flat(tmp_path / "nested" / "inner" / "c.jpg", 50)
    (tmp_path / "a_file").write_text("not a folder")
    (tmp_path / "fake.tflite").write_bytes((tmp_path / "photos" / "a.jpg").read_bytes())
    (tmp_path / "ckpt.index").write_bytes(b"a TF1 checkpoint's index")
    (tmp_path / "ckpt.data-00000-of-00001").write_bytes(b"and its values")
    return tmp_path


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    """The run's only output: one `error:` line on stderr, exit 2, no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


# (arguments after `enhance`, with {tflite} {serving} {version} filled in; what the line must say)
MISTAKES = {
    "model missing": (["photos", "--model", "nothing.tflite", "--out", "out"],
                      "model nothing.tflite does not exist; pass a .tflite file, a SavedModel folder"),
    "model misspelt": (["photos", "--model", "{version}/tflite/float.tflite", "--out", "out"],
                       "does not exist; did you mean {version}/tflite/float32.tflite?"),
    "model folder that is no SavedModel": (["photos", "--model", "notes", "--out", "out"],
                                           "model notes is a folder but not a SavedModel"),
    "model file that is no TFLite": (["photos", "--model", "photos/a.jpg", "--out", "out"],
                                     "model photos/a.jpg is a file but not a TFLite model; pass a .tflite"),
    "model .tflite that is no TFLite": (["photos", "--model", "fake.tflite", "--out", "out"],
                                        "model fake.tflite is not a TFLite model (no TFL3"),
    "model serving folder": (["photos", "--model", "{serving}", "--out", "out"],
                             "is a folder without saved_model.pb; pass {version} (SavedModel, the newest of 2) "
                             "or {version}/tflite/float32.tflite"),
    "model tflite folder": (["photos", "--model", "{version}/tflite", "--out", "out"],
                            "is a folder without saved_model.pb; pass {version}/tflite/float32.tflite"),
    "model saved_model.pb": (["photos", "--model", "{version}/saved_model.pb", "--out", "out"],
                             "is the graph file of a SavedModel; pass its folder: {version}"),
    "model checkpoint file": (["photos", "--model", "ckpt.data-00000-of-00001", "--out", "out"],
                              "model ckpt.data-00000-of-00001 is one file of a TF checkpoint; pass its prefix: ckpt"),
    "input missing": (["photos/z.jpg", "--model", "{tflite}", "--out", "out"],
                      "input photos/z.jpg does not exist; pass JPEG/PNG files or folders of them"),
    "input with the wrong suffix": (["photos/a.jpeg", "--model", "{tflite}", "--out", "out"],
                                    "input photos/a.jpeg does not exist; did you mean photos/a.jpg?"),
    "input in a missing folder": (["album/a.jpg", "--model", "{tflite}", "--out", "out"],
                                  "input album/a.jpg does not exist (nor does its folder album); pass"),
    "input folder without photos": (["notes", "--model", "{tflite}", "--out", "out"],
                                    "input folder notes has no .jpg/.jpeg/.png files (1 other file(s)); pass"),
    "input folder with photos one level down": (["nested", "--model", "{tflite}", "--out", "out"],
                                                "subfolders are not searched; pass nested/inner"),
    "out is a file": (["photos", "--model", "{tflite}", "--out", "a_file"],
                      "output folder a_file is a file (outputs keep the inputs' names inside a folder); pass a "
                      "folder, created if missing, e.g. a_file_enhanced"),
    "out under a file": (["photos", "--model", "{tflite}", "--out", "a_file/out"],
                         "output folder a_file/out cannot be created: "),
    "out is an input folder": (["photos", "--model", "{tflite}", "--out", "photos"],
                               "output folder photos is also an input folder: the enhanced photos would replace "
                               "the originals; pass another folder, e.g. photos_enhanced"),
    "out holds an input photo": (["photos/a.jpg", "--model", "{tflite}", "--out", "photos/"],
                                 "output folder photos/ holds the input photos/a.jpg: its enhanced photo would "
                                 "replace it; pass another folder, e.g. photos_enhanced"),
    "threads 0": (["photos", "--model", "{tflite}", "--out", "out", "--threads", "0"],
                  "error: argument --threads: got '0'; pass an integer >= 1, e.g. 2"),
    "quality 101": (["photos", "--model", "{tflite}", "--out", "out", "--quality", "101"],
                    "error: argument --quality: got '101'; pass an integer from 1 to 100, e.g. 95"),
    "quality not a number": (["photos", "--model", "{tflite}", "--out", "out", "--quality", "high"],
                             "error: argument --quality: got 'high'; pass an integer from 1 to 100"),
    "tile negative": (["photos", "--model", "{tflite}", "--out", "out", "--tile", "-1"],
                      "error: argument --tile: got '-1'; pass an integer >= 0, e.g. 512"),
    "max-pixels negative": (["photos", "--model", "{tflite}", "--out", "out", "--max-pixels", "-1"],
                            "error: argument --max-pixels: got '-1'; pass an integer >= 0, e.g. 250000000"),
    "max-pixels in megapixels": (["photos", "--model", "{tflite}", "--out", "out", "--max-pixels", "200MP"],
                                 "error: argument --max-pixels: got '200MP'; pass an integer >= 0"),
    "no --model": (["photos", "--out", "out"],
                   "error: the following arguments are required: --model (usage: phone2dslr enhance "),
    "unknown option": (["photos", "--model", "{tflite}", "--out", "out", "--tiles", "64"],
                       "error: unrecognized arguments: --tiles 64 (usage: phone2dslr enhance "),
}


@pytest.mark.parametrize("case", list(MISTAKES))
def test_argument_mistakes_end_before_work_in_one_line(serving, photos, case):
    (serving / "1600000000").mkdir(exist_ok=True)  # an older version: the serving folder has two
    (serving / "1600000000" / "saved_model.pb").touch()
    fill = {"tflite": _tflite(serving), "serving": str(serving), "version": str(serving / VERSION)}
    args, expected = MISTAKES[case]
    before = sorted(str(p.relative_to(photos)) for p in photos.rglob("*"))
    line = _one_error_line(_enhance(*[a.format(**fill) for a in args], cwd=photos))
    assert expected.format(**fill) in line
    assert sorted(str(p.relative_to(photos)) for p in photos.rglob("*")) == before  # nothing written


def test_a_tile_too_small_names_the_smallest_that_works(serving, photos):
    line = _one_error_line(_enhance("photos", "--model", _tflite(serving), "--out", "out", "--tile",
                                    str(2 * RADIUS), cwd=photos))
    assert f"tile {2 * RADIUS} is too small for this model (receptive-field radius {RADIUS} px" in line
    assert f"the smallest tile that works is {2 * RADIUS + 1}; pass --tile {2 * RADIUS + 1} or more" in line
    assert not (photos / "out").exists()
    # ... and it does work, exactly: the tiled output equals the whole-image output
    enhancer = enhance.load_enhancer(_tflite(serving))
    assert enhancer.min_tile == 2 * RADIUS + 1
    enhance.check_tile(enhancer, enhancer.min_tile)
    with pytest.raises(enhance.EnhanceError, match=f"smallest tile that works is {2 * RADIUS + 1}"):
        enhance.check_tile(enhancer, 2 * RADIUS)
    image = np.random.default_rng(1).random((30, 26, 3), np.float32)
    np.testing.assert_allclose(enhancer(image, tile=enhancer.min_tile), enhancer(image, tile=0), atol=1e-5)


# ---------------------------------------------------------------------------------------------
# Write faults: no partial file, one line per failed photo, the rest written, a count, exit 1.

def _listing(folder: pathlib.Path) -> list[str]:
    return sorted(os.listdir(folder))  # hidden temporaries (.name.xxxx.tmp) included


def _failed_lines(result: subprocess.CompletedProcess) -> list[str]:
    assert "Traceback" not in result.stderr, result.stderr
    return [line for line in result.stderr.splitlines() if line.startswith("skipped ")]


def _mount_tmpfs(path: pathlib.Path, size: str) -> str:
    """Mount a tmpfs of `size` at `path` (made); '' when done, else why it could not be (not root, or a
    container without the capability)."""
    path.mkdir()
    try:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
                                 capture_output=True, text=True)
    except FileNotFoundError:
        return "no mount command"
    return "" if mounted.returncode == 0 else mounted.stderr.strip() or f"mount exited {mounted.returncode}"


@contextlib.contextmanager
def _tmpfs(path: pathlib.Path, size: str):
    """A tmpfs of `size` mounted at `path` for the block, or a skip where mounting is not permitted."""
    why = _mount_tmpfs(path, size)
    if why:
        pytest.skip(f"cannot mount a size-limited tmpfs here ({why}); the other write faults still run")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_a_full_disk_leaves_no_partial_file_and_the_rest_goes_on(serving, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _flat(photos / "a_small.png", 90)
    _noise(photos / "b_large.png", (200, 200))  # ~120 kB enhanced: cannot fit
    _flat(photos / "c_small.png", 200)
    with _tmpfs(tmp_path / "out", "64k") as out:
        (out / "b_large.png").write_bytes(b"the previous run's photo")  # must survive the failed rewrite
        result = _enhance("photos", "--model", _tflite(serving), "--out", "out", "--no-progress", cwd=tmp_path)
        assert result.returncode == 1, result.stderr
        assert _failed_lines(result) == ["skipped photos/b_large.png: cannot write out/b_large.png: "
                                         "No space left on device"]
        assert "enhanced 2 of 3 photo(s) into out" in result.stdout and "(1 failed)" in result.stdout
        assert _listing(out) == ["a_small.png", "b_large.png", "c_small.png"]
        assert (out / "b_large.png").read_bytes() == b"the previous run's photo"
        for name in ("a_small.png", "c_small.png"):
            with Image.open(out / name) as im:
                assert im.format == "PNG" and im.size == (40, 40)


def test_a_directory_in_the_way_fails_that_photo_only(serving, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name, value in (("a.jpg", 60), ("b.png", 120), ("c.jpg", 180)):
        _flat(photos / name, value)
    (out / "b.png").mkdir(parents=True)  # e.g. left by another tool: the rename onto it fails
    result = _enhance("photos", "--model", _tflite(serving), "--out", "out", "--no-progress", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert _failed_lines(result) == ["skipped photos/b.png: cannot write out/b.png: Is a directory"]
    assert "enhanced 2 of 3 photo(s)" in result.stdout and "(1 failed)" in result.stdout
    assert _listing(out) == ["a.jpg", "b.png", "c.jpg"]
    assert (out / "b.png").is_dir() and not os.listdir(out / "b.png")
    with Image.open(out / "c.jpg") as im:
        assert im.format == "JPEG" and im.size == (40, 40)


class _Unwritable:
    """Makes a folder unwritable with a real fault; `undo` restores it.

    Not root: read-only modes. Root, whom modes do not stop: a read-only remount of a tmpfs mounted
    there; where mounting is not permitted, the folder is moved aside and a file takes its name, so
    every write under it fails with ENOTDIR.
    """

    def __init__(self, folder: pathlib.Path):
        self.folder, self.aside = folder, folder.with_name(folder.name + ".aside")
        if os.geteuid() != 0:
            self.how, self.reason = "chmod", "Permission denied"
            folder.mkdir()
        elif not _mount_tmpfs(folder, "1m"):
            self.how, self.reason = "remount", "Read-only file system"
        else:
            self.how, self.reason = "replace", "Not a directory"
            folder.mkdir(exist_ok=True)

    def __call__(self) -> None:
        if self.how == "chmod":
            self.folder.chmod(0o555)
        elif self.how == "remount":
            subprocess.run(["mount", "-o", "remount,ro", str(self.folder)], check=True)
        else:
            self.folder.rename(self.aside)
            self.folder.write_text("a file where the output folder was")

    def undo(self) -> list[str]:
        """Writable again (unmounted); returns the folder's listing as the fault left it."""
        if self.how == "chmod":
            self.folder.chmod(0o755)
            return _listing(self.folder)
        if self.how == "remount":
            listing = _listing(self.folder)
            subprocess.run(["umount", str(self.folder)], check=True)
            return listing
        if self.aside.exists():
            self.folder.unlink()
            self.aside.rename(self.folder)
        return _listing(self.folder)


def test_an_output_folder_that_turns_unwritable_mid_run(serving, tmp_path):
    """The folder turns unwritable after the first photo (so after the up-front checks, which would
    reject a folder unwritable from the start): the rest fail one by one, nothing partial is left."""
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    for name, value in (("a.png", 60), ("b.png", 120), ("c.jpg", 180)):
        _flat(photos / name, value)
    lock = _Unwritable(out)
    model = enhance.load_enhancer(_tflite(serving))
    calls = []

    def enhance_then_lock(image: np.ndarray) -> np.ndarray:
        calls.append(1)
        if len(calls) == 2:  # the second photo: the first is written by now
            lock()
        return model.fn(image)

    enhancer = enhance.Enhancer("tflite", enhance_then_lock, radius=model.radius)
    lines: list[str] = []
    try:
        summary = enhance.enhance_files([str(photos)], enhancer, str(out), tile=0, progress=False,
                                        report=lines.append)
    finally:
        listing = lock.undo()
    assert listing == ["a.png"]  # no temporary left behind
    assert [os.path.basename(p) for p in summary.written] == ["a.png"]
    assert [os.path.basename(p) for p, _ in summary.failed] == ["b.png", "c.jpg"]
    assert lines == [f"skipped {photos}/b.png: cannot write {out}/b.png: {lock.reason}",
                     f"skipped {photos}/c.jpg: cannot write {out}/c.jpg: {lock.reason}"]
    assert "enhanced 1 of 3 photo(s)" in str(summary) and "(2 failed)" in str(summary)


# ---------------------------------------------------------------------------------------------
# Photos as files: the pixel ceiling, bit depth, alpha, grey, colour profiles.

def test_a_photo_above_max_pixels_is_skipped_in_one_line(serving, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    _noise(photos / "a_big.png", (200, 200))
    Image.fromarray(np.full((150, 250, 3), 90, np.uint8)).save(photos / "b_big.jpg")
    _flat(photos / "c_small.jpg", 60)
    write_png16(photos / "d_deep.png", gradient16(24, 100))  # 16-bit through the real (non-identity) model
    result = _enhance("photos", "--model", _tflite(serving), "--out", "out", "--max-pixels", "10000",
                      "--no-progress", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert _failed_lines(result) == [
        "skipped photos/a_big.png: 200 x 200 = 40000 pixels (0.04 MP) is above --max-pixels 10000; pass "
        "--max-pixels 40000 or more (0: no limit) if the machine has the memory",
        "skipped photos/b_big.jpg: 250 x 150 = 37500 pixels (0.0375 MP) is above --max-pixels 10000; pass "
        "--max-pixels 37500 or more (0: no limit) if the machine has the memory"]
    assert "enhanced 2 of 4 photo(s) into out" in result.stdout and "(2 failed)" in result.stdout
    assert sorted(os.listdir(tmp_path / "out")) == ["c_small.jpg", "d_deep.png"]
    deep, info = read_png(tmp_path / "out" / "d_deep.png")
    assert info["bitdepth"] == 16 and deep.dtype == np.uint16
    assert len(np.unique(deep[..., 0])) > 1000  # an 8-bit path would leave at most 256

    result = _enhance("photos", "--model", _tflite(serving), "--out", "out", "--max-pixels", "40000",
                      "--no-progress", cwd=tmp_path)
    assert result.returncode == 0 and not _failed_lines(result), result.stderr
    assert sorted(os.listdir(tmp_path / "out")) == ["a_big.png", "b_big.jpg", "c_small.jpg", "d_deep.png"]


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> pathlib.Path:
    """A SavedModel whose output is its input (one 1x1 conv, identity kernel): what goes in comes out."""
    image = keras.Input((None, None, 3))
    conv = keras.layers.Conv2D(3, 1, use_bias=False)
    model = keras.Model(image, conv(image), name="identity")
    conv.set_weights([np.eye(3, dtype=np.float32).reshape(1, 1, 3, 3)])
    path = tmp_path_factory.mktemp("identity") / "saved_model"
    export_image_generator(model, str(path))
    return path


def test_bit_depth_alpha_grey_and_profiles_come_out_as_documented(identity, tmp_path):
    photos, out = tmp_path / "photos", tmp_path / "out"
    photos.mkdir()
    rng = np.random.default_rng(8)
    deep = gradient16()
    write_png16(photos / "gradient16.png", deep)
    rgba16 = rng.integers(0, 65536, (20, 30, 4), dtype=np.uint32).astype(np.uint16)
    rgba16[:5, :, 3] = 0
    write_png16(photos / "rgba16.png", rgba16[..., :3], rgba16[..., 3])
    rgba8 = rng.integers(0, 256, (20, 30, 4), dtype=np.uint8)
    rgba8[:, :7, 3] = 0
    Image.fromarray(rgba8).save(photos / "rgba8.png")
    grey16 = rng.integers(0, 65536, (20, 30), dtype=np.uint32).astype(np.uint16)
    write_png16(photos / "grey16.png", grey16)
    adobe = icc_profile("Test Adobe RGB (1998)")
    Image.fromarray(rgba8[..., :3]).save(photos / "adobe.png", icc_profile=adobe)
    write_png16(photos / "adobe16.png", deep, icc=adobe)

    result = _enhance("photos", "--model", identity, "--out", "out", "--tile", "16", "--no-progress", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "enhanced 6 of 6 photo(s)" in result.stdout
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]
    assert notes == ["note: photos/adobe16.png: 16-bit with the ICC profile 'Test Adobe RGB (1998)', which is "
                     "not sRGB: enhanced without colour conversion (LittleCMS in Pillow converts 8-bit only), "
                     "profile kept"]

    samples, info = read_png(out / "gradient16.png")  # 16 bits in, 16 bits out: 1024 levels, not 256
    assert info["bitdepth"] == 16 and len(np.unique(samples[..., 0])) == 1024
    np.testing.assert_array_equal(samples, deep)
    for name, expected in (("rgba16.png", rgba16), ("rgba8.png", rgba8)):  # alpha unchanged, colour under it too
        samples, info = read_png(out / name)
        assert info["alpha"] and samples.dtype == expected.dtype
        np.testing.assert_array_equal(samples, expected)
    samples, info = read_png(out / "grey16.png")  # grey: RGB of the same depth
    assert info["bitdepth"] == 16 and not info["greyscale"]
    np.testing.assert_array_equal(samples, np.repeat(grey16[..., None], 3, -1))
    with Image.open(out / "adobe.png") as im:  # converted to sRGB, tagged sRGB
        profile = ImageCms.ImageCmsProfile(io.BytesIO(im.info["icc_profile"]))
        assert ImageCms.getProfileDescription(profile).strip() == "sRGB built-in"
        np.testing.assert_array_equal(np.asarray(im), enhance.read_photo(str(photos / "adobe.png")).rgb)
        assert not np.array_equal(np.asarray(im), rgba8[..., :3])
    with Image.open(out / "adobe16.png") as im:
        assert im.info["icc_profile"] == adobe
    np.testing.assert_array_equal(read_png(out / "adobe16.png")[0], deep)


def test_every_entry_of_an_input_folder_is_enhanced_or_counted_as_ignored(serving, photos):
    """A sub-folder, a pipe, a broken link and a text file beside the photos: each is named in the
    summary's counts, none is read (a pipe would block the read forever)."""
    folder = photos / "photos"
    (folder / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "sub" / "inner.jpg")
    os.mkfifo(folder / "pipe.jpg")
    os.symlink(folder / "gone.jpg", folder / "broken.jpg")
    (folder / "readme.txt").write_text("not a photo")
    result = _enhance("photos", "--model", _tflite(serving), "--out", "out", cwd=photos)
    assert result.returncode == 0, result.stderr
    assert ("1 entries that are not regular files ignored" not in result.stdout
            and "2 entries that are not regular files ignored" in result.stdout), result.stdout
    assert "1 sub-folder(s) (not searched) ignored" in result.stdout and "1 non-JPEG/PNG file(s) ignored" in result.stdout
    assert sorted(os.listdir(photos / "out")) == ["a.jpg", "b.png"]


@pytest.mark.parametrize("kind", ["pipe", "broken link"])
def test_an_input_that_is_not_a_regular_file_is_one_line_before_work(serving, photos, kind):
    path = photos / "odd.jpg"
    if kind == "pipe":
        os.mkfifo(path)
    else:
        os.symlink(photos / "gone.jpg", path)
    line = _one_error_line(_enhance("odd.jpg", "--model", _tflite(serving), "--out", "out", cwd=photos))
    assert ("not a regular file" if kind == "pipe" else "is a broken link") in line and "did you mean" not in line

"""Every name and every entry under the data root: read, or listed in the ingest report with a reason.

Names that are not UTF-8 (b"caf\\xe9.png") used to kill the run (TFX's fingerprint and the listing
both decode names as UTF-8); photos one folder down (trainA/batch2/) used to vanish unlisted.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import tensorflow as tf
from tfx.utils import io_utils

from phone2dslr import config as config_lib
from phone2dslr import features as F
from phone2dslr.components.image_example_gen import listing
from phone2dslr.components.image_example_gen.component import ImageExampleGen, ImageFolderDriver, input_fingerprint
from phone2dslr.components.image_example_gen.layout import IngestOptions, Source, layout_extras, list_source
from phone2dslr.components.image_example_gen.reading import read_file
from phone2dslr.components.image_example_gen.report import entry_warnings
from tests.components.image_example_gen_helpers import encode, make_dataset, rgb, run_ingest

LATIN1 = b"caf\xe9"  # "café" as Latin-1: not valid UTF-8
SHOWN = "caf\\xe9"  # how the report, the examples and the pair ids show it


def _bytes_write(folder: Path, name: bytes, data: bytes) -> bytes:
    path = os.path.join(os.fsencode(folder), name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _by_reason(rejects: list[dict]) -> dict[str, str]:
    return {r["path"]: (r["reason"], r["detail"]) for r in rejects}


@pytest.fixture(scope="module")
def messy(tmp_path_factory) -> Path:
    """An unpaired-layout root with three clean pairs and one of everything a user's folders hold."""
    base = tmp_path_factory.mktemp("messy")
    root = base / "data"
    dirs = make_dataset(root, "unpaired", train_pairs=3, test_pairs=1)
    phone, dslr = encode(rgb(40), "PNG"), encode(rgb(41), "PNG")
    _bytes_write(dirs["train_phone"], LATIN1 + b".png", phone)  # a good pair with a Latin-1 name
    _bytes_write(dirs["train_dslr"], LATIN1 + b".png", dslr)
    _bytes_write(dirs["train_phone"], b"notes\xff.txt", b"not a photo")
    for side in ("train_phone", "train_dslr"):  # a pair one folder down, and a hidden folder
        (dirs[side] / "batch2").mkdir()
        (dirs[side] / "batch2" / "5.png").write_bytes(encode(rgb(50 if side == "train_phone" else 51), "PNG"))
    (dirs["train_phone"] / ".thumbnails").mkdir()
    (dirs["train_phone"] / ".thumbnails" / "0.png").write_bytes(phone)
    os.symlink(root / "nowhere.png", dirs["train_dslr"] / "broken.png")
    (root / "trainC").mkdir()  # a misspelt layout folder beside the real ones
    (root / "trainC" / "9.png").write_bytes(phone)
    return root


def test_non_utf8_names_are_ingested_escaped_and_the_rest_go_on(messy, tmp_path):
    r = run_ingest(messy, tmp_path / "report", layout="unpaired", eval_percent=0)
    train = {e[F.PAIR_ID].decode(): e for e in r["examples"][F.TRAIN]}
    assert sorted(train) == ["train/0", "train/1", "train/2", f"train/{SHOWN}"]
    pair = train[f"train/{SHOWN}"]
    assert pair[F.PHONE_FILE].decode() == f"trainA/{SHOWN}.png" and pair[F.DSLR_FILE].decode() == f"trainB/{SHOWN}.png"
    assert pair[F.PHONE] == encode(rgb(40), "PNG") and pair[F.DSLR] == encode(rgb(41), "PNG")  # the real files' bytes
    rejects = _by_reason(r["rejects"])
    assert rejects[str(messy / "trainA" / "notes\\xff.txt")][0] == "ignored"
    summary = r["summary"]
    assert summary["status"] == "ok" and summary["escaped_names"] == 3
    assert any("names are not valid UTF-8" in w for w in summary["warnings"])


def test_escaped_name_that_equals_a_real_name_is_set_aside(tmp_path):
    folder = tmp_path / "trainA"
    folder.mkdir()
    _bytes_write(folder, LATIN1 + b".png", b"latin-1 named")
    (folder / f"{SHOWN}.png").write_bytes(b"literally named")  # a real name holding a backslash
    found = list_source(str(tmp_path), Source("train", "phone", "trainA", "train"))
    assert found.images == [(("train", f"train/{SHOWN}"), ("phone", f"trainA/{SHOWN}.png"))]
    assert [(e.rel, e.kind) for e in found.ignored] == [(f"trainA/{SHOWN}.png", listing.NAME_COLLISION)]
    assert read_file(str(tmp_path), f"trainA/{SHOWN}.png") == b"literally named"


def test_escaped_names_read_back_their_bytes(tmp_path):
    _bytes_write(tmp_path, LATIN1 + b".png", b"\x89PNG bytes")
    assert read_file(str(tmp_path), f"{SHOWN}.png") == b"\x89PNG bytes"


def test_a_remote_folder_that_cannot_be_listed_is_one_entry_and_the_rest_go_on():
    root = "ram://entries_test"
    for folder in ("trainA", "trainB"):
        tf.io.gfile.makedirs(f"{root}/{folder}")
        with tf.io.gfile.GFile(f"{root}/{folder}/0.png", "wb") as f:
            f.write(encode(rgb(1), "PNG"))
    with tf.io.gfile.GFile(f"{root}/trainB/".encode() + LATIN1 + b".png", "wb") as f:
        f.write(b"x")
    a = list_source(root, Source("train", "phone", "trainA", "train"))
    b = list_source(root, Source("train", "dslr", "trainB", "train"))
    assert [rel for _, (_, rel) in a.images] == ["trainA/0.png"] and not a.ignored
    assert not b.images and [(e.rel, e.kind) for e in b.ignored] == [("trainB", listing.UNLISTABLE)]
    assert "UnicodeDecodeError" in listing.ignored_detail(b.ignored[0])


def test_driver_fingerprints_every_name_and_sub_folder(messy, tmp_path):
    # TFX's own fingerprint, which FileBasedDriver used, dies on the Latin-1 name:
    with pytest.raises(UnicodeDecodeError):
        io_utils.generate_fingerprint("train_phone", str(messy / "trainA" / "*"))
    gen = ImageExampleGen(input_base=str(messy), layout="unpaired", patch_size=0)
    props = ImageFolderDriver.resolve_exec_properties(None, dict(gen.exec_properties), None, None)
    first = props["input_fingerprint"]
    assert first.count("\n") == 4 and "num_entries" in first and props["span"] == 0
    options = IngestOptions(input_base=str(messy), layout="unpaired")
    assert input_fingerprint(options) == first
    extra = messy / "trainB" / "batch2" / "6.png"  # a photo added one folder down changes it
    extra.write_bytes(b"new")
    try:
        assert input_fingerprint(options) != first
    finally:
        extra.unlink()
    assert input_fingerprint(options) == first


def test_sub_folders_hidden_and_stray_entries_are_listed_when_not_read(messy, tmp_path):
    r = run_ingest(messy, tmp_path / "report", layout="unpaired", eval_percent=0)
    assert "train/batch2/5" not in {e[F.PAIR_ID].decode() for e in r["examples"][F.TRAIN]}
    rejects = _by_reason(r["rejects"])
    expected = {
        messy / "trainA" / "batch2" / "5.png": "data.recursive is false",
        messy / "trainB" / "batch2" / "5.png": "data.recursive is false",
        messy / "trainA" / ".thumbnails": "hidden",
        messy / "trainB" / "broken.png": "not a regular file",
        messy / "trainC": "not part of the layout",
    }
    for path, words in expected.items():
        assert rejects[str(path)][0] == "ignored" and words in rejects[str(path)][1], (path, rejects.get(str(path)))
    summary = r["summary"]
    assert summary["ignored"] == {"hidden": 1, "not_image": 1, "not_layout": 1, "not_regular": 1, "subfolder": 2}
    assert summary["files"]["ignored"] == 6 and summary["files"]["seen"] == 4 * 2 + 2 * 1
    assert any(w.startswith("2 images in sub-folders") for w in summary["warnings"])
    assert any(w.startswith("1 files or folders beside the layout") for w in summary["warnings"])


def test_recursive_reads_sub_folders_and_pairs_by_their_path(messy, tmp_path):
    r = run_ingest(messy, tmp_path / "report", layout="unpaired", eval_percent=0, recursive=True)
    train = {e[F.PAIR_ID].decode(): e for e in r["examples"][F.TRAIN]}
    assert train["train/batch2/5"][F.PHONE] == (messy / "trainA" / "batch2" / "5.png").read_bytes()
    assert train["train/batch2/5"][F.DSLR_FILE] == b"trainB/batch2/5.png"
    summary = r["summary"]
    assert "subfolder" not in summary["ignored"] and summary["ignored"]["hidden"] == 1
    assert summary["files"]["seen"] == 12 and summary["files"]["kept"] == 12


def test_recursive_is_a_data_option_that_reaches_the_component():
    assert config_lib.DataConfig().recursive is False
    assert config_lib.from_dict({"data": {"recursive": True}, "train": {"content": "pixel"}}).data.recursive is True
    with pytest.raises(config_lib.ConfigError, match="data.recursive: expected bool"):
        config_lib.from_dict({"data": {"recursive": "yes"}, "train": {"content": "pixel"}})
    gen = ImageExampleGen(input_base="/data", recursive=True)
    assert gen.exec_properties["recursive"] == 1
    assert IngestOptions.from_dict({"input_base": "/data", "recursive": 1}).recursive is True


def test_entries_beside_the_dped_layout_are_listed_other_phones_without_a_warning(tmp_path):
    make_dataset(tmp_path, "dped", train_pairs=1, test_pairs=1)
    (tmp_path / "sony" / "training_data").mkdir(parents=True)
    (tmp_path / "iphone" / "training_data" / "iphone_extra").mkdir()
    (tmp_path / "iphone" / "test_data" / "full_size_test_images").mkdir()  # the run report's: part of the layout
    _bytes_write(tmp_path / "iphone", b"readme\xe9.txt", b"notes")
    (tmp_path / ".DS_Store").write_bytes(b"\0")
    found = layout_extras(IngestOptions(input_base=str(tmp_path)))
    assert [(e.rel, e.kind) for e in found.ignored] == [
        (".DS_Store", listing.HIDDEN), ("sony", listing.OTHER_PHONE), ("iphone/readme\\xe9.txt", listing.NOT_LAYOUT),
        ("iphone/training_data/iphone_extra", listing.NOT_LAYOUT)]
    assert found.escaped == 1 and "data.phone is iphone" in listing.ignored_detail(found.ignored[1])
    assert entry_warnings({"other_phone": 1}, 0, "see x") == []
    assert entry_warnings({"not_layout": 2}, 0, "see x") == [
        "2 files or folders beside the layout's folders are not part of it and were not read; see x"]


@pytest.mark.parametrize("recursive", [False, True])
def test_a_link_back_up_the_tree_is_a_link_loop_not_the_other_sides_photos(tmp_path, recursive):
    """`training_data/iphone/loop -> ..` would show canon/0.jpg as a phone photo one folder down."""
    side = tmp_path / "iphone" / "training_data"
    for folder in ("iphone", "canon"):
        (side / folder).mkdir(parents=True)
        (side / folder / "0.jpg").write_bytes(b"\xff\xd8")
    (side / "iphone" / "loop").symlink_to("..")
    (side / "iphone" / "same").symlink_to(".")
    (side / "iphone" / "batch2").mkdir()
    (side / "iphone" / "batch2" / "7.jpg").write_bytes(b"\xff\xd8")
    found = [(e.rel, e.kind) for e in listing.walk(str(tmp_path), "iphone/training_data/iphone", recursive)]
    deeper = listing.IMAGE if recursive else listing.SUBFOLDER
    assert sorted(found) == sorted([
        ("iphone/training_data/iphone/0.jpg", listing.IMAGE),
        ("iphone/training_data/iphone/batch2/7.jpg", deeper),
        ("iphone/training_data/iphone/loop", listing.LINK_LOOP),
        ("iphone/training_data/iphone/same", listing.LINK_LOOP)])

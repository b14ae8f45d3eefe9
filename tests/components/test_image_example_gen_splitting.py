"""Train/eval split by source photo and scene (photo manifests), the per-source summary, shuffled shards."""
from __future__ import annotations

import collections
import glob
import json
import os
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import transforms
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.layout import (PHOTO_SIDE, IngestError, IngestOptions, check_layout,
                                                            make_unit, stable_int)
from phone2dslr.components.image_example_gen.splitting import check_manifests, eval_cutoff, manifests, read_manifest
from tests.components.image_example_gen_helpers import BEAM_ARGS, dped_dirs, rgb, unpaired_dirs, write

_SINK: dict[str, list] = collections.defaultdict(list)


def _keep(values: list, name: str) -> None:
    _SINK[name].extend(values)


def _ingest(root: Path, report: Path, **kw) -> tuple[dict[str, list[dict]], dict]:
    """IngestImages + WriteReport on FnApiRunner: parsed examples per split and summary.json."""
    options = IngestOptions(input_base=str(root), patch_size=0, **kw)
    _SINK.clear()
    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as p:
        out = p | transforms.IngestImages(  # pylint: disable=no-value-for-parameter
            options, check_layout(options), check_manifests(options))
        for split in F.SPLITS:
            _ = out[split] | f"Gather[{split}]" >> beam.combiners.ToList() | f"Keep[{split}]" >> beam.Map(_keep, split)
        _ = out | transforms.WriteReport(options, str(report))  # pylint: disable=no-value-for-parameter
    parsed = {s: [tf.io.parse_single_example(ex, F.parsing_spec()) for ex in _SINK.get(s, [])] for s in F.SPLITS}
    return parsed, json.loads((report / report_lib.SUMMARY_JSON).read_text())


def _dped_patches(root: Path, photos: dict[str, str], per_photo: int) -> dict[str, tuple[str, str]]:
    """DPED-style training patches 0.png, 1.png ... cut from `photos` (name -> scene), a manifest naming
    them, and two test pairs; returns stem -> (photo, scene)."""
    dirs = dped_dirs(root)
    truth, n = {}, 0
    for photo, scene in photos.items():
        for _ in range(per_photo):
            write(dirs["train_phone"] / f"{n}.png", rgb(2 * n, (8, 8)))
            write(dirs["train_dslr"] / f"{n}.png", rgb(2 * n + 1, (8, 8)))
            truth[str(n)] = (photo, scene)
            n += 1
    for i in range(2):
        write(dirs["test_phone"] / f"{i}.png", rgb(900 + i, (8, 8)))
        write(dirs["test_dslr"] / f"{i}.png", rgb(950 + i, (8, 8)))
    rows = ["name,photo,scene"] + [f"{stem}.png,{photo},{'' if scene == photo else scene}"
                                   for stem, (photo, scene) in truth.items()]
    (root / "iphone" / "training_data" / "photos.csv").write_text("\n".join(rows) + "\n")
    return truth


def test_eval_takes_the_k_smallest_group_hashes():
    rng = np.random.default_rng(0)
    for n, percent in [(0, 10), (1, 50), (2, 10), (3, 10), (10, 25), (100, 20), (37, 99), (50, 0)]:
        hashes = [int(h) for h in rng.integers(0, 2**63, size=n)]
        # Restated: k = n * p / 100 rounded half up, at least 1 and at most n - 1 when p > 0 and n >= 2.
        k = 0 if percent == 0 or n < 2 else min(n - 1, max(1, int(np.floor(n * percent / 100 + 0.5))))
        cutoff = eval_cutoff(hashes, percent)
        assert {h for h in hashes if h < cutoff} == set(sorted(hashes)[:k]), (n, percent)


def test_manifest_rows_and_header(tmp_path):
    options = IngestOptions(input_base=str(tmp_path))
    train = next(m for m in manifests(options) if m.group == "train")
    assert train.path == "iphone/training_data/photos.csv" and check_manifests(options) == []
    path = tmp_path / train.path
    path.parent.mkdir(parents=True)
    path.write_text("name,photo,scene\n0.jpg,a,\n1,a,s\n,b,\n2,,\n")
    assert check_manifests(options) == [train]
    rows = list(read_manifest(str(tmp_path), train))
    assert rows == [(("train", "iphone/training_data/0"), (PHOTO_SIDE, ("a", "a"))),
                    (("train", "iphone/training_data/1"), (PHOTO_SIDE, ("a", "s"))), None, None]
    unit = make_unit(*rows[1][0:1], [("phone", "p/1.jpg"), rows[1][1], ("dslr", "d/1.jpg")])
    assert (unit.photo, unit.scene, unit.phone, unit.dslr) == ("a", "s", ("p/1.jpg",), ("d/1.jpg",))
    path.write_text("file,source\n0,a\n")
    with pytest.raises(IngestError, match="must start with a header row of columns name,photo,scene") as e:
        check_manifests(options)
    assert "\n" not in str(e.value)


def test_dped_patches_of_one_photo_or_scene_never_straddle_train_and_eval(tmp_path):
    photos = {f"photo{i}": f"photo{i}" for i in range(10)}
    photos.update({"stereo_left": "stereo", "stereo_right": "stereo"})  # 11 scenes
    truth = _dped_patches(tmp_path, photos, per_photo=4)
    ex, summary = _ingest(tmp_path, tmp_path / "report", eval_percent=25)
    where = {}
    for split in (F.TRAIN, F.EVAL):
        for e in ex[split]:
            photo, scene = truth[e[F.PAIR_ID].numpy().decode().rsplit("/", 1)[1]]
            where.setdefault(("photo", photo), set()).add(split)
            where.setdefault(("scene", scene), set()).add(split)
    assert all(len(splits) == 1 for splits in where.values()), where
    eval_scenes = {k[1] for k, s in where.items() if k[0] == "scene" and s == {F.EVAL}}
    assert len(eval_scenes) == 3  # round(11 scenes * 25 %), by the smallest scene-id hashes:
    assert eval_scenes == set(sorted({s for _, s in truth.values()}, key=stable_int)[:3])
    split = summary["split"]
    assert split["decided_by"] == {"scene": 8, "photo": 40, "file": 0}
    assert split["groups"] == {"train": 8, "eval": 3} and split["manifest"]["rows"] == 48
    photos_in = {s: {p for (kind, p), where_ in where.items() if kind == "photo" and where_ == {s}}
                 for s in (F.TRAIN, F.EVAL)}
    iphone = summary["by_source"]["iphone"]
    for s in (F.TRAIN, F.EVAL):
        assert iphone[s] == {"examples": len(ex[s]), "photos": len(photos_in[s]),
                             "scenes": len({photos[p] for p in photos_in[s]})}
    assert iphone[F.TEST] == {"examples": 2, "photos": 2, "scenes": 2}
    assert not [w for w in summary["warnings"] if "photos.csv" in w]
    text = (tmp_path / "report" / report_lib.SUMMARY_TEXT).read_text()
    assert "train/eval split by scene 8, photo 40" in text and "source iphone: train " in text


def test_files_missing_from_the_manifest_are_split_alone_and_warned_about(tmp_path):
    _dped_patches(tmp_path, {"a": "a", "b": "b", "c": "c"}, per_photo=2)
    dirs = dped_dirs(tmp_path)
    write(dirs["train_phone"] / "extra.png", rgb(500, (8, 8)))
    write(dirs["train_dslr"] / "extra.png", rgb(501, (8, 8)))
    with open(tmp_path / "iphone" / "training_data" / "photos.csv", "a") as f:
        f.write("ghost,d,\n")
    _, summary = _ingest(tmp_path, tmp_path / "report", eval_percent=30)
    assert summary["split"]["decided_by"] == {"scene": 0, "photo": 6, "file": 1}
    assert summary["split"]["manifest"] == {"rows": 7, "bad_rows": 0, "unmatched": 1}
    assert any(w.startswith("1 training name stems have no row in") for w in summary["warnings"])
    assert "1 photo manifest rows name no image file" in summary["warnings"]


def test_unpaired_summary_counts_phone_and_dslr_sources(tmp_path):
    dirs = unpaired_dirs(tmp_path)
    rows = ["name,photo,scene"]
    for i in range(6):
        write(dirs["train_phone"] / f"a{i}.png", rgb(i, (8, 8)))
        write(dirs["train_dslr"] / f"b{i}.png", rgb(50 + i, (8, 8)))
        rows += [f"a{i},pa{i // 2},", f"b{i},pb{i // 3},"]  # 3 phone photos, 2 DSLR photos
    write(dirs["test_phone"] / "t.png", rgb(90, (8, 8)))
    write(dirs["test_dslr"] / "t.png", rgb(91, (8, 8)))
    (tmp_path / "train_photos.csv").write_text("\n".join(rows) + "\n")
    ex, summary = _ingest(tmp_path, tmp_path / "report", layout="unpaired", pairing="unpaired", eval_percent=20)
    by = summary["by_source"]
    assert set(by) == {"iphone", "dslr"} and summary["split"]["groups"] == {"train": 4, "eval": 1}
    assert sum(by["iphone"].get(s, {}).get("photos", 0) for s in (F.TRAIN, F.EVAL)) == 3
    assert sum(by["dslr"].get(s, {}).get("photos", 0) for s in (F.TRAIN, F.EVAL)) == 2
    assert sum(c["examples"] for src in by.values() for s, c in src.items() if s != F.TEST) == 12
    assert by["iphone"][F.TEST]["examples"] == 1 and len(ex[F.TEST]) == 1


def _shards(folder: Path) -> list[Path]:
    return sorted(Path(p) for p in glob.glob(str(folder / "data_tfrecord-*.gz")))


def _write(examples: list[bytes], folder: Path, seed: int, target: int) -> list[bytes]:
    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as p:
        _ = (p | beam.Create(examples)
             | transforms.WriteShuffledSplit(str(folder), seed, target))  # pylint: disable=no-value-for-parameter
    return [r.numpy() for f in _shards(folder) for r in tf.data.TFRecordDataset(str(f), compression_type="GZIP")]


def test_shards_hold_every_example_once_in_a_seeded_random_order(tmp_path):
    examples = [f"photo{p:02d}/patch{i:02d}".encode() * 8 for p in range(20) for i in range(15)]
    first = _write(examples, tmp_path / "a", seed=1, target=2000)
    again = _write(examples, tmp_path / "b", seed=1, target=2000)
    other = _write(examples, tmp_path / "c", seed=2, target=2000)
    names = [p.name for p in _shards(tmp_path / "a")]
    count = -(-sum(map(len, examples)) // 2000)
    assert names == [f"data_tfrecord-{i:05d}-of-{count:05d}.gz" for i in range(count)] and count > 1
    assert sorted(first) == sorted(examples) == sorted(other)
    assert [f.read_bytes() for f in _shards(tmp_path / "a")] == [f.read_bytes() for f in _shards(tmp_path / "b")]
    assert first != other
    # Written in order, 14 of 15 neighbours share a photo; shuffled, about 1 in 20 do.
    same = np.mean([a[:7] == b[:7] for a, b in zip(first, first[1:])])
    assert same < 0.2


def test_an_empty_split_still_gets_a_file(tmp_path):
    assert _write([], tmp_path / "e", seed=0, target=100) == []
    assert [p.name for p in _shards(tmp_path / "e")] == ["data_tfrecord-00000-of-00001.gz"]


def test_dslr_only_units_always_train_and_eval_comes_from_the_phone_side():
    from phone2dslr.components.image_example_gen.layout import TRAIN_GROUP, Unit, stable_int
    from phone2dslr.components.image_example_gen.splitting import split_of

    scene = "motorcycle"
    above = stable_int(scene) + 1  # a cutoff that sends this scene to eval
    phone_only = Unit(TRAIN_GROUP, "a1", ("trainA/a1.jpg",), (), photo="m_left", scene=scene)
    dslr_only = Unit(TRAIN_GROUP, "b1", (), ("trainB/b1.jpg",), photo="m_left", scene=scene)
    pair = Unit(TRAIN_GROUP, "1", ("p/1.jpg",), ("c/1.jpg",), photo="m_left", scene=scene)
    assert split_of(phone_only, above) == "eval" and split_of(pair, above) == "eval"
    assert split_of(dslr_only, above) == "train"  # an unpaired layout keeps its DSLR domain
    assert split_of(pair, stable_int(scene)) == "train"

"""The IngestImages PTransform on a real Beam pipeline (FnApiRunner), both layouts and pairing modes."""
from __future__ import annotations

import collections
import json
from pathlib import Path

import apache_beam as beam
import tensorflow as tf
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.testing.util import assert_that, equal_to

from phone2dslr.components.image_example_gen import transforms
from phone2dslr import features as F
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.layout import IngestOptions, check_layout
from tests.components.image_example_gen_helpers import BEAM_ARGS, make_dataset, rgb, write


_SINK: dict[str, list] = collections.defaultdict(list)  # the in-memory runner runs in this process


def _keep(values: list, name: str) -> None:
    _SINK[name].extend(values)


def _run(root: Path, report_dir: Path | None = None, **kw) -> dict:
    """Runs IngestImages; returns {split: [parsed examples]}, the reject records and summed counts."""
    kw.setdefault("patch_size", 0)
    options = IngestOptions(input_base=str(root), **kw)
    _SINK.clear()
    p = beam.Pipeline(options=PipelineOptions(BEAM_ARGS))
    out = p | transforms.IngestImages(options, check_layout(options))  # pylint: disable=no-value-for-parameter
    for name in (*F.SPLITS, transforms.REJECTS, transforms.COUNTS):
        _ = (out[name] | f"Gather[{name}]" >> beam.combiners.ToList()
             | f"Keep[{name}]" >> beam.Map(_keep, name))
    if report_dir is not None:
        _ = out | transforms.WriteReport(options, str(report_dir))  # pylint: disable=no-value-for-parameter
    result = p.run()
    result.wait_until_finish()
    metrics = result.metrics().query(MetricsFilter().with_namespace(transforms.METRICS_NAMESPACE))["counters"]
    got = dict(_SINK)
    parsed = {s: [tf.io.parse_single_example(ex, F.parsing_spec()) for ex in got.get(s, [])] for s in F.SPLITS}
    counts = collections.Counter()
    for c in got.get(transforms.COUNTS, []):
        counts.update(c)
    return {"examples": parsed, "rejects": got.get(transforms.REJECTS, []), "counts": counts,
            "metrics": {m.key.metric.name: m.committed for m in metrics}}


def _ids(examples) -> list[tuple[str, str, int]]:
    return sorted((e[F.PAIR_ID].numpy().decode(), e[F.DOMAIN].numpy().decode(), int(e[F.PATCH_INDEX])) for e in examples)


def test_dped_paired_with_patches(tmp_path):
    make_dataset(tmp_path, "dped", train_pairs=6, test_pairs=2)
    r = _run(tmp_path, patch_size=8, eval_percent=30)
    ex = r["examples"]
    assert len(ex[F.TEST]) == 2 * 9 and all(int(e[F.PATCH_INDEX]) >= 0 for e in ex[F.TEST])
    assert len(ex[F.TRAIN]) + len(ex[F.EVAL]) == 6 * 9
    train_ids = {i for i, _, _ in _ids(ex[F.TRAIN])}
    eval_ids = {i for i, _, _ in _ids(ex[F.EVAL])}
    assert not train_ids & eval_ids and len(train_ids | eval_ids) == 6  # a pair's patches stay together
    assert r["counts"]["files.seen"] == 16 and r["counts"]["files.kept"] == 16 and not r["rejects"]


def test_dped_unpaired_mode_train_is_single_domain_test_stays_paired(tmp_path):
    make_dataset(tmp_path, "dped", train_pairs=4, test_pairs=2)
    r = _run(tmp_path, pairing="unpaired", eval_percent=0)
    domains = collections.Counter(d for _, d, _ in _ids(r["examples"][F.TRAIN]))
    assert domains == {"A": 4, "B": 4}
    assert {d for _, d, _ in _ids(r["examples"][F.TEST])} == {"paired"} and len(r["examples"][F.TEST]) == 2


def test_unpaired_layout_with_unpaired_test_folders(tmp_path):
    dirs = make_dataset(tmp_path, "unpaired", train_pairs=0, test_pairs=0)
    for i in range(3):
        write(dirs["train_phone"] / f"a{i}.jpg", rgb(i))
        write(dirs["test_phone"] / f"ta{i}.png", rgb(10 + i))
    for i in range(2):
        write(dirs["train_dslr"] / f"b{i}.png", rgb(20 + i))
        write(dirs["test_dslr"] / f"tb{i}.png", rgb(30 + i))
    r = _run(tmp_path, layout="unpaired", pairing="unpaired", eval_percent=0)
    assert collections.Counter(d for _, d, _ in _ids(r["examples"][F.TRAIN])) == {"A": 3, "B": 2}
    # No test pairs exist at all, so the test split holds single-domain examples rather than nothing.
    assert collections.Counter(d for _, d, _ in _ids(r["examples"][F.TEST])) == {"A": 3, "B": 2}
    assert not r["rejects"]


def test_unpaired_layout_paired_mode_pairs_by_stem(tmp_path):
    dirs = make_dataset(tmp_path, "unpaired", train_pairs=3, test_pairs=1)
    write(dirs["train_phone"] / "extra.png", rgb(50))
    write(dirs["train_phone"] / "notes.txt", b"shot on a phone")
    write(dirs["train_phone"] / ".DS_Store", b"\0")
    write(dirs["train_dslr"] / "._0.png", b"\0\5\26\7 macOS resource fork")
    (dirs["train_dslr"] / "subfolder").mkdir()
    r = _run(tmp_path, layout="unpaired", eval_percent=0)
    assert [i for i, _, _ in _ids(r["examples"][F.TRAIN])] == ["train/0", "train/1", "train/2"]
    reasons = sorted((Path(x["path"]).name, x["reason"]) for x in r["rejects"])
    assert reasons == [(".DS_Store", "ignored"), ("._0.png", "ignored"), ("extra.png", "no_partner"),
                       ("notes.txt", "ignored")]
    assert r["counts"]["files.ignored"] == 3 and r["counts"]["files.rejected"] == 1 and r["counts"]["files.seen"] == 9
    assert r["metrics"]["files.ignored"] == 3 and r["metrics"]["rejects.no_partner"] == 1
    assert r["metrics"]["examples.train"] == 3 and r["metrics"]["pairs_kept.test"] == 1


def test_splits_are_deterministic_and_near_eval_percent(tmp_path):
    make_dataset(tmp_path, "dped", train_pairs=100, test_pairs=0, size=(8, 8))
    first = _run(tmp_path, eval_percent=20)["examples"]
    second = _run(tmp_path, eval_percent=20)["examples"]
    assert _ids(first[F.EVAL]) == _ids(second[F.EVAL]) and _ids(first[F.TRAIN]) == _ids(second[F.TRAIN])
    assert 10 <= len(first[F.EVAL]) <= 30 and len(first[F.TRAIN]) + len(first[F.EVAL]) == 100


def test_report_files_list_every_set_aside_file(tmp_path):
    dirs = make_dataset(tmp_path / "data", "dped", train_pairs=3, test_pairs=1)  # the report beside, not inside
    write(dirs["train_phone"] / "bad.jpg", b"not an image")
    write(dirs["train_dslr"] / "bad.jpg", rgb(1))
    write(dirs["train_dslr"] / "gray.png", rgb(2).convert("L"))
    write(dirs["train_phone"] / "gray.png", rgb(3))
    report = tmp_path / "report"
    r = _run(tmp_path / "data", report_dir=report, patch_size=0)
    lines = [json.loads(x) for x in (report / report_lib.REJECTS_FILE).read_text().splitlines()]
    assert sorted((Path(x["path"]).name, x["reason"]) for x in lines) == [("bad.jpg", "not_an_image"),
                                                                           ("bad.jpg", "partner_rejected")]
    assert all(set(x) == {"path", "split", "reason", "detail"} for x in lines)
    summary = json.loads((report / report_lib.SUMMARY_JSON).read_text())
    assert summary["status"] == "ok" and summary["normalised"] == {"grayscale": 1}
    assert summary["rejects"] == {"not_an_image": 1, "partner_rejected": 1}
    assert summary["files"] == {"seen": 12, "kept": 10, "rejected": 2, "ignored": 0}
    assert sum(summary["examples"].values()) == 5 and summary["pairs_kept"]["test"] == 1
    assert "set aside: not_an_image 1, partner_rejected 1" in (report / report_lib.SUMMARY_TEXT).read_text()
    assert r["counts"]["rejects.not_an_image"] == 1


def test_clean_run_writes_an_empty_rejects_file(tmp_path):
    make_dataset(tmp_path / "data", "dped", train_pairs=2, test_pairs=1)
    report = tmp_path / "report"
    _run(tmp_path / "data", report_dir=report)
    assert (report / report_lib.REJECTS_FILE).read_text() == ""


def test_pair_ids_per_split_with_assert_that(tmp_path):
    make_dataset(tmp_path, "dped", train_pairs=3, test_pairs=2)
    options = IngestOptions(input_base=str(tmp_path), patch_size=0, eval_percent=0)

    def pair_id(serialized: bytes) -> str:
        return tf.train.Example.FromString(serialized).features.feature[F.PAIR_ID].bytes_list.value[0].decode()

    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as p:
        out = p | transforms.IngestImages(options, check_layout(options))  # pylint: disable=no-value-for-parameter
        assert_that(out[F.TRAIN] | "TrainIds" >> beam.Map(pair_id),
                    equal_to([f"iphone/training_data/{i}" for i in range(3)]), label="train")
        assert_that(out[F.TEST] | "TestIds" >> beam.Map(pair_id),
                    equal_to(["iphone/test_data/0", "iphone/test_data/1"]), label="test")
        assert_that(out[F.EVAL], equal_to([]), label="eval")

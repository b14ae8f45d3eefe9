"""The real executor with real artifacts, read back as downstream TFX components read it."""
from __future__ import annotations

import glob
import json
import shutil
import os
from pathlib import Path

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tfx.types import artifact_utils, standard_artifacts

from phone2dslr import features as F
from phone2dslr.components.image_example_gen import report as report_lib
from phone2dslr.components.image_example_gen.component import ImageExampleGen, IngestReport
from phone2dslr.components.image_example_gen.executor import Executor
from phone2dslr.components.image_example_gen import executor as executor_lib
from phone2dslr.components.image_example_gen.layout import IngestError, IngestOptions
from tests.components.image_example_gen_helpers import BEAM_ARGS, make_dataset, rgb, write


def _do(root: Path, out: Path, **params):
    examples, report = standard_artifacts.Examples(), IngestReport()
    examples.uri, report.uri = str(out / "examples"), str(out / "report")
    props = dict(input_base=str(root), layout="dped", phone="iphone", pairing="paired", patch_size=0,
                 patch_stride=0, patches_per_image=0, eval_percent=25, max_reject_fraction=0.5, seed=0)
    props.update(params)
    # make_beam_pipeline_fn skips TFX's per-executor sdist build (seconds) that beam_pipeline_args trigger.
    context = Executor.Context(tmp_dir=str(out / "tmp"),
                               make_beam_pipeline_fn=lambda: beam.Pipeline(options=PipelineOptions(BEAM_ARGS)))
    Executor(context).Do(
        {}, {"examples": [examples], "ingest_report": [report]}, props)
    return examples, report


def _read_split(examples, split: str) -> dict:
    files = glob.glob(os.path.join(artifact_utils.get_split_uri([examples], split), "data_tfrecord-*.gz"))
    assert files, f"no TFRecords for split {split}"
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP").batch(1000)
    batches = [tf.io.parse_example(b, F.parsing_spec()) for b in ds]
    return {k: tf.concat([b[k] for b in batches], 0) for k in F.ALL_KEYS} if batches else {}


def test_executor_writes_standard_example_gen_layout(tmp_path):
    make_dataset(tmp_path / "data", "dped", train_pairs=8, test_pairs=2, ext=".jpg")
    examples, report = _do(tmp_path / "data", tmp_path / "out", patch_size=8)
    assert artifact_utils.decode_split_names(examples.split_names) == list(F.SPLITS)
    assert examples.get_string_custom_property("payload_format") == "FORMAT_TF_EXAMPLE"
    train, test = _read_split(examples, F.TRAIN), _read_split(examples, F.TEST)
    n_eval = len(_read_split(examples, F.EVAL).get(F.PHONE, []))
    assert len(train[F.PHONE]) + n_eval == 8 * 9 and len(test[F.PHONE]) == 2 * 9
    assert tf.io.decode_image(train[F.PHONE][0], channels=3).shape == (8, 8, 3)
    assert tf.io.decode_image(test[F.DSLR][0], channels=3).shape == (8, 8, 3)
    assert set(test[F.DOMAIN].numpy()) == {b"paired"}
    summary = json.loads(Path(report.uri, report_lib.SUMMARY_JSON).read_text())
    assert summary["status"] == "ok" and summary["examples"][F.TEST] == 2 * 9
    assert Path(report.uri, report_lib.REJECTS_FILE).exists() and Path(report.uri, report_lib.SUMMARY_TEXT).exists()
    assert report.get_int_custom_property("examples_test") == 2 * 9


def test_too_many_rejects_fail_with_one_line_naming_the_report(tmp_path):
    dirs = make_dataset(tmp_path / "data", "dped", train_pairs=2, test_pairs=1)
    for i in range(3):
        write(dirs["train_phone"] / f"broken{i}.jpg", b"\xff\xd8\xff garbage")
        write(dirs["train_dslr"] / f"broken{i}.jpg", rgb(i))
    with pytest.raises(IngestError) as e:
        _do(tmp_path / "data", tmp_path / "out", max_reject_fraction=0.3)
    message = str(e.value)
    assert "\n" not in message and "6 of 12 image files (50%) were set aside" in message
    # TFX deletes a failed execution's outputs (here out/report), so the message names a copy
    # beside them: <component folder>/failed_ingest_report/<execution id>/.
    kept = tmp_path / executor_lib.FAILED_REPORT_DIR / "report"
    assert "max_reject_fraction 0.3" in message and str(kept / "rejects.jsonl") in message
    shutil.rmtree(tmp_path / "out" / "report")
    assert (kept / report_lib.SUMMARY_JSON).exists()
    lines = (kept / report_lib.REJECTS_FILE).read_text().splitlines()
    assert sorted(json.loads(x)["reason"] for x in lines) == ["not_an_image"] * 3 + ["partner_rejected"] * 3


def test_nothing_usable_fails_with_one_line(tmp_path):
    dirs = make_dataset(tmp_path / "data", "dped", train_pairs=0, test_pairs=0)
    write(dirs["train_phone"] / "0.png", rgb(0, (6, 6)))
    write(dirs["train_dslr"] / "0.png", rgb(1, (6, 6)))
    with pytest.raises(IngestError, match="no usable examples: 0 of 2 image files kept, 2 set aside "
                                          r"\(too_small: 2\)") as e:
        _do(tmp_path / "data", tmp_path / "out", patch_size=8, max_reject_fraction=1.0)
    assert "\n" not in str(e.value)


def test_summary_verdicts():
    options = IngestOptions(input_base="/data", max_reject_fraction=0.5)
    empty = report_lib.build_summary({}, options, "/r")
    assert empty["status"] == "failed" and "no image files found in the dped folders under /data" in empty["error"]
    no_train = report_lib.build_summary({"files.seen": 4, "files.kept": 2, "files.rejected": 2, "examples.test": 1,
                                         "rejects.too_small": 2}, options, "/r")
    assert no_train["error"].startswith("image ExampleGen: no training examples: 2 of 4 image files kept")
    ok = report_lib.build_summary({"files.seen": 4, "files.kept": 2, "files.rejected": 2, "examples.train": 1,
                                   "rejects.too_small": 2}, options, "/r")
    assert ok["status"] == "ok" and ok["warnings"] == ["split 'eval' has no examples", "split 'test' has no examples"]
    assert "warning: split 'eval' has no examples" in report_lib.summary_text(ok)


def test_missing_folders_fail_before_beam_starts(tmp_path):
    with pytest.raises(IngestError, match=f"expects folder\\(s\\) {tmp_path}/trainA") as e:
        _do(tmp_path, tmp_path / "out", layout="unpaired")
    assert "\n" not in str(e.value) and not (tmp_path / "out" / "examples").exists()


def test_component_declares_outputs_and_checks_parameters():
    c = ImageExampleGen(input_base="/data", layout="unpaired", pairing="unpaired", patch_size=0)
    assert set(c.outputs) == {"examples", "ingest_report"}
    assert c.outputs["ingest_report"].type.TYPE_NAME == "phone2dslr.IngestReport"
    assert c.exec_properties["layout"] == "unpaired" and "trainA/*" in c.exec_properties["input_config"]
    with pytest.raises(IngestError, match="pairing 'both' is not one of paired, unpaired"):
        ImageExampleGen(input_base="/data", pairing="both")


def test_unpaired_folders_read_as_pairs_name_the_pairing_option(tmp_path):
    """trainA/trainB with different names, layout unpaired, the default pairing 'paired': nothing
    pairs, and the one line says which option the user most likely forgot."""
    dirs = make_dataset(tmp_path / "data", "unpaired", train_pairs=0, test_pairs=1)
    for i in range(3):
        write(dirs["train_phone"] / f"a{i}.png", rgb(i))
        write(dirs["train_dslr"] / f"b{i}.png", rgb(10 + i))
    with pytest.raises(IngestError, match="no_partner.*set data.pairing: unpaired; see ") as e:
        _do(tmp_path / "data", tmp_path / "out", layout="unpaired", patch_size=8)
    assert "\n" not in str(e.value)
    _do(tmp_path / "data", tmp_path / "out2", layout="unpaired", pairing="unpaired", patch_size=8)  # then it works

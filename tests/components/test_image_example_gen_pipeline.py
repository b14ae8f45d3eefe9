"""The component inside a real LocalDagRunner pipeline: driver, executor and a TFX consumer."""
from __future__ import annotations

import glob
import json
import os

import pytest
from tfx import v1 as tfx

from phone2dslr.components.image_example_gen.component import ImageExampleGen
from tests.components.image_example_gen_helpers import BEAM_ARGS, encode, make_dataset, rgb


@pytest.mark.slow
def test_local_dag_runner_feeds_statistics_gen(tmp_path):
    dirs = make_dataset(tmp_path / "data", "dped", train_pairs=6, test_pairs=2)
    # A Latin-1 file name used to kill the run in TFX's driver (its input fingerprint globs as UTF-8).
    for side, seed in (("train_phone", 30), ("train_dslr", 31)):
        with open(os.path.join(os.fsencode(dirs[side]), b"caf\xe9.png"), "wb") as f:
            f.write(encode(rgb(seed), "PNG"))
    gen = ImageExampleGen(input_base=str(tmp_path / "data"), patch_size=8, eval_percent=20)
    stats = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="ingest", pipeline_root=str(tmp_path / "root"), components=[gen, stats],
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(tmp_path / "mlmd.sqlite")),
        # --setup_file also spares TFX building a throwaway sdist of itself for every Beam component.
        beam_pipeline_args=BEAM_ARGS + [f"--setup_file={os.path.abspath('setup.py')}"])
    tfx.orchestration.LocalDagRunner().run(pipeline)
    root = tmp_path / "root" / "ImageExampleGen"
    assert glob.glob(str(root / "examples" / "*" / "Split-train" / "data_tfrecord-*.gz"))
    summary, = glob.glob(str(root / "ingest_report" / "*" / "summary.json"))
    summary = json.loads(open(summary).read())
    assert summary["status"] == "ok" and summary["escaped_names"] == 2 and summary["files"]["kept"] == 18
    for split in ("train", "eval", "test"):
        assert glob.glob(str(tmp_path / "root" / "StatisticsGen" / "statistics" / "*" / f"Split-{split}" / "*"))

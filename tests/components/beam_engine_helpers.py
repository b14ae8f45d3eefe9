"""The Beam components (ImageExampleGen, StatisticsGen, Transform) on one engine, and what they wrote.

Each engine runs the pipeline's own components through LocalDagRunner with only beam_pipeline_args
changed, so a difference from the in-process DirectRunner is the engine's, not the test's.
"""
from __future__ import annotations

import glob
import os
from pathlib import Path

from phone2dslr import features as F
from tests.components.image_example_gen_helpers import BEAM_ARGS, make_dataset

PATCH = 8  # 24x24 photos -> 9 patches each: a few dozen examples, every split non-empty
SETUP_PY = str(Path(__file__).resolve().parents[2] / "setup.py")
BEAM_COMPONENTS = ("ImageExampleGen", "StatisticsGen", "Transform")


def make_photos(root: Path) -> Path:
    """Six training and two test pairs of 24x24 PNGs in the DPED layout under root/data."""
    make_dataset(root / "data", "dped", train_pairs=6, test_pairs=2)
    return root / "data"


def run_components(data: Path, root: Path, beam_args: list[str], until: str = "Transform") -> Path:
    """ImageExampleGen -> StatisticsGen -> SchemaGen -> Transform (as pipeline.py wires them) up to
    `until`, on `beam_args`; returns the pipeline root."""
    import phone2dslr  # noqa: F401  (the Keras/TF environment first, as every entry point)
    from tfx import v1 as tfx

    from phone2dslr.components.image_example_gen.component import ImageExampleGen
    from phone2dslr.pipeline.pipeline import PREPROCESSING_FN

    gen = ImageExampleGen(input_base=str(data), patch_size=PATCH, eval_percent=20)
    stats = tfx.components.StatisticsGen(examples=gen.outputs["examples"])
    schema = tfx.components.SchemaGen(statistics=stats.outputs["statistics"], infer_feature_shape=True)
    transform = tfx.components.Transform(
        examples=gen.outputs["examples"], schema=schema.outputs["schema"], preprocessing_fn=PREPROCESSING_FN,
        materialize=False, custom_config={"patch_size": PATCH})
    components = [gen, stats, schema, transform]
    components = components[: [c.id for c in components].index(until) + 1]
    pipeline = tfx.dsl.Pipeline(
        pipeline_name="engines", pipeline_root=str(root), components=components,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            str(root / "mlmd.sqlite")),
        # --setup_file, as the local runner adds: otherwise TFX builds and stages an sdist of itself.
        beam_pipeline_args=[*beam_args, f"--setup_file={SETUP_PY}"])
    tfx.orchestration.LocalDagRunner().run(pipeline)
    return root


def direct_examples(data: Path, root: Path) -> dict[str, list[bytes]]:
    """The examples the in-process DirectRunner (the default engine) writes for the same photos."""
    return examples_by_split(run_components(data, root, BEAM_ARGS, until="ImageExampleGen"))


def _output(root: Path, component: str, name: str) -> str:
    found = glob.glob(str(root / component / name / "*"))
    assert len(found) == 1, f"{component}.{name}: expected one artifact folder, found {found}"
    return found[0]


def examples_by_split(root: Path) -> dict[str, list[bytes]]:
    """{split: its serialized tf.Examples, sorted} from ImageExampleGen's output under `root`."""
    import tensorflow as tf

    examples = _output(root, "ImageExampleGen", "examples")
    out = {}
    for split in F.SPLITS:
        files = sorted(glob.glob(os.path.join(examples, f"Split-{split}", "*.gz")))
        assert files, f"no files for split {split}"
        out[split] = sorted(bytes(r.numpy()) for r in tf.data.TFRecordDataset(files, compression_type="GZIP"))
    return out


def statistics_counts(root: Path) -> dict[str, int]:
    """{split: num_examples} of StatisticsGen's statistics under `root`."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    stats = _output(root, "StatisticsGen", "statistics")
    out = {}
    for split in F.SPLITS:
        with open(os.path.join(stats, f"Split-{split}", "FeatureStats.pb"), "rb") as f:
            out[split] = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read()).datasets[0].num_examples
    return out


def transform_summary(root: Path) -> tuple[int, list[str]]:
    """(examples Transform analysed, per its pre-transform statistics; its output feature names)."""
    import tensorflow_transform as tft
    from tensorflow_metadata.proto.v0 import statistics_pb2

    with open(os.path.join(_output(root, "Transform", "pre_transform_stats"), "FeatureStats.pb"), "rb") as f:
        analysed = statistics_pb2.DatasetFeatureStatisticsList.FromString(f.read()).datasets[0].num_examples
    graph = tft.TFTransformOutput(_output(root, "Transform", "transform_graph"))
    return analysed, sorted(graph.transformed_feature_spec())


def check_engine(root: Path, direct: dict[str, list[bytes]]) -> None:
    """Asserts an engine's run wrote the DirectRunner's examples, counted them all in StatisticsGen
    and analysed the training split in Transform."""
    examples = examples_by_split(root)
    assert {s: len(v) for s, v in examples.items()} == {s: len(v) for s, v in direct.items()}
    assert examples == direct  # the same bytes: same examples, same split of each
    assert statistics_counts(root) == {s: len(v) for s, v in direct.items()}
    analysed, features = transform_summary(root)
    assert analysed == len(direct[F.TRAIN])
    assert {F.PHONE, F.DSLR, "has_phone", "has_dslr"} <= set(features)

"""The image ExampleGen component: photo folders in; Examples and an IngestReport out.

Declared with a BeamExecutorSpec so the pipeline's beam_pipeline_args (DirectRunner locally,
Dataflow / Flink / Spark elsewhere) reach it, and with a driver that fingerprints the input, so a
cached run is reused only while the photos are unchanged.

The driver: TFX's FileBasedDriver fingerprints the files matching each input_config glob through
tf.io.gfile.glob, which decodes every name as UTF-8: one Latin-1 file name anywhere in a layout
folder killed the run in the driver, before the executor could set anything aside. Its `<folder>/*`
globs also missed files one folder down, so photos added to trainA/batch2/ would have reused the
old examples. ImageFolderDriver walks the same entries the executor lists (listing.walk, every name
and every sub-folder) and fingerprints their names, kinds, sizes and modification times.
"""
from __future__ import annotations

import hashlib
import os
from typing import Any

from tfx import types
from tfx.components.example_gen import driver, utils
from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.proto import example_gen_pb2
from tfx.types import artifact, standard_artifacts, standard_component_specs
from tfx.types.component_spec import ChannelParameter, ExecutionParameter

from phone2dslr.components.image_example_gen import executor, listing
from phone2dslr.components.image_example_gen.layout import IngestOptions, file_patterns, layout_extras, sources
from phone2dslr.components.image_example_gen.splitting import manifests


_STATTED = (listing.IMAGE, listing.SUBFOLDER, listing.NOT_IMAGE)  # regular files: their bytes matter


def _file_line(root: str, rel: str) -> str:
    try:
        size, mtime = listing.stat(os.path.join(root, rel))
    except Exception:  # noqa: BLE001  (vanished or unreadable: the executor sets it aside; still fingerprinted)
        size, mtime = -1, -1
    return f"{size}\t{mtime}"


def input_fingerprint(options: IngestOptions) -> str:
    """One line per layout folder (entry count, bytes, SHA-256 of names, kinds, sizes, mtimes) plus
    one each for the photo manifests and the entries beside the layout. Never raises for bad names,
    missing or unlistable folders: those change the fingerprint and are reported by the executor.
    """
    root, lines = options.input_base, []
    for source in sources(options):
        digest, count, total = hashlib.sha256(), 0, 0
        # Sub-folders are walked even when they are not read: they are listed in the report.
        for entry in listing.walk(root, source.directory, recursive=True):
            stats = _file_line(root, entry.rel) if entry.kind in _STATTED else ""
            digest.update(f"{entry.rel}\t{entry.kind}\t{stats}\n".encode("utf-8"))
            count += 1
            total += max(0, int(stats.split("\t")[0])) if stats else 0
        lines.append(f"split:{source.group}_{source.side},num_entries:{count},total_bytes:{total},"
                     f"sha256:{digest.hexdigest()}")
    extras = hashlib.sha256()
    for m in manifests(options):
        extras.update(f"{m.path}\t{_file_line(root, m.path)}\n".encode("utf-8"))
    for entry in layout_extras(options).ignored:
        extras.update(f"{entry.rel}\t{entry.kind}\n".encode("utf-8"))
    lines.append(f"manifests_and_other_entries:sha256:{extras.hexdigest()}")
    return "\n".join(lines)


class ImageFolderDriver(driver.FileBasedDriver):
    """FileBasedDriver with input_fingerprint in place of TFX's glob: span 0, no version."""

    def resolve_exec_properties(self, exec_properties: dict[str, Any], pipeline_info: Any,
                                component_info: Any) -> dict[str, Any]:
        """Adds span, version and input fingerprint to exec_properties (input_config is left as is)."""
        del pipeline_info, component_info
        exec_properties[utils.SPAN_PROPERTY_NAME] = 0
        exec_properties[utils.VERSION_PROPERTY_NAME] = None
        exec_properties[utils.FINGERPRINT_PROPERTY_NAME] = input_fingerprint(IngestOptions.from_dict(exec_properties))
        return exec_properties


class IngestReport(artifact.Artifact):
    """Folder with rejects.jsonl (one line per set-aside file), summary.json and summary.txt."""

    TYPE_NAME = "phone2dslr.IngestReport"  # "<namespace>.<Name>", as Kubeflow V2 requires of custom types


class ImageExampleGenSpec(types.ComponentSpec):
    """Parameters mirror DataConfig; input_config only tells the driver which files to fingerprint."""

    PARAMETERS = {
        standard_component_specs.INPUT_BASE_KEY: ExecutionParameter(type=str),
        standard_component_specs.INPUT_CONFIG_KEY: ExecutionParameter(type=example_gen_pb2.Input),
        "layout": ExecutionParameter(type=str),
        "phone": ExecutionParameter(type=str),
        "pairing": ExecutionParameter(type=str),
        "patch_size": ExecutionParameter(type=int),
        "patch_stride": ExecutionParameter(type=int),
        "patches_per_image": ExecutionParameter(type=int),
        "eval_percent": ExecutionParameter(type=int),
        "max_reject_fraction": ExecutionParameter(type=float),
        "seed": ExecutionParameter(type=int),
        "recursive": ExecutionParameter(type=int, optional=True),  # 0/1: an int travels through every runner
    }
    INPUTS = {}
    OUTPUTS = {
        executor.EXAMPLES_KEY: ChannelParameter(type=standard_artifacts.Examples),
        executor.INGEST_REPORT_KEY: ChannelParameter(type=IngestReport),
    }


class ImageExampleGen(base_beam_component.BaseBeamComponent):
    """Reads DPED-layout or unpaired (trainA/trainB/testA/testB) photo folders into train/eval/test.

    Outputs: `examples` (Examples, splits train/eval/test, GZIP tf.Examples with the keys in
    features.py) and `ingest_report` (IngestReport). Bad files are normalised or set aside and
    listed; the run fails with IngestError only when too little is usable.
    """

    SPEC_CLASS = ImageExampleGenSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)
    DRIVER_CLASS = ImageFolderDriver

    def __init__(self, input_base: str, layout: str = "dped", phone: str = "iphone", pairing: str = "paired",
                 patch_size: int = 100, patch_stride: int = 0, patches_per_image: int = 0, eval_percent: int = 10,
                 max_reject_fraction: float = 0.5, seed: int = 0, recursive: bool = False):
        options = IngestOptions(input_base=input_base, layout=layout, phone=phone, pairing=pairing,
                                patch_size=patch_size, patch_stride=patch_stride,
                                patches_per_image=patches_per_image, eval_percent=eval_percent,
                                max_reject_fraction=float(max_reject_fraction), seed=seed,
                                recursive=bool(recursive))  # checks values now
        patterns = {**file_patterns(options), **{f"{m.group}_manifest": m.path for m in manifests(options)}}
        input_config = example_gen_pb2.Input(splits=[  # the photo manifests too: editing one re-runs the split
            example_gen_pb2.Input.Split(name=name, pattern=pattern) for name, pattern in patterns.items()])
        spec = ImageExampleGenSpec(
            input_base=input_base, input_config=input_config, layout=layout, phone=phone, pairing=pairing,
            patch_size=patch_size, patch_stride=patch_stride, patches_per_image=patches_per_image,
            eval_percent=eval_percent, max_reject_fraction=float(max_reject_fraction), seed=seed,
            recursive=int(bool(recursive)),
            examples=types.Channel(type=standard_artifacts.Examples),
            ingest_report=types.Channel(type=IngestReport))
        super().__init__(spec=spec)

"""Run compiled steps the way a Kubeflow pod does: the command and arguments from the spec, with
`{{$}}` replaced by an ExecutorInput holding local paths (what the KFP driver would send)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import tensorflow as tf
from google.protobuf import json_format

from phone2dslr.components.latest_pushed_model import executor as lpm
from tests.components.image_example_gen_helpers import make_dataset
from tests.kubeflow.conftest import REPO, Build


def _save_model(folder, scale: float) -> None:
    module = tf.Module()
    module.scale = tf.Variable(scale)
    module.__call__ = tf.function(lambda x: x * module.scale, input_signature=[tf.TensorSpec([None], tf.float32)])
    tf.saved_model.save(module, str(folder))


def _start_step(build: Build, task: str, workdir: Path, inputs: dict, outputs: dict, **parameters):
    """Starts one step's container command here; `_finish` returns its ExecutorOutput (as a dict).

    Parameters are the compiled constants (as the driver resolves them), except those given.
    """
    spec = build.spec
    component = spec.components[spec.root.dag.tasks[task].component_ref.name]
    container = json_format.MessageToDict(spec.deployment_spec)["executors"][component.executor_label]["container"]
    values = {name: json_format.MessageToDict(p.runtime_value.constant)
              for name, p in spec.root.dag.tasks[task].inputs.parameters.items()}

    def artifacts(definitions, uris):
        return {name: {"artifacts": [{"name": f"local/{name}", "uri": str(uri),
                                      "type": json_format.MessageToDict(definitions[name].artifact_type)}]}
                for name, uri in uris.items()}

    output_file = workdir / "executor_output.json"
    invocation = json.dumps({
        "inputs": {"parameterValues": {**values, **parameters},
                   "artifacts": artifacts(component.input_definitions.artifacts, inputs)},
        "outputs": {"artifacts": artifacts(component.output_definitions.artifacts, outputs),
                    "outputFile": str(output_file)},
    })
    command = [sys.executable if c == "python" else c for c in container["command"]]
    args = [invocation if a == "{{$}}" else a for a in container["args"]]
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    process = subprocess.Popen(command + args, cwd=workdir, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    return process, output_file


def _finish(started) -> dict:
    process, output_file = started
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr[-3000:]
    return json.loads(output_file.read_text())


def test_compiled_steps_run_from_their_container_commands(builds, tmp_path):
    """LatestPushedModel (the kfp baseline) and ImageExampleGen (Beam, a custom artifact type), in parallel."""
    serving = tmp_path / "serving"
    _save_model(serving / "1700000000", 1.0)
    _save_model(serving / "1700000500", 3.0)  # the newest push
    candidate = tmp_path / "trainer" / "model"
    _save_model(candidate / "Format-Serving", 2.0)
    out = tmp_path / "out" / "model"
    (tmp_path / "baseline").mkdir()
    baseline = _start_step(builds["kfp"], "latest_pushed_model", tmp_path / "baseline", {"candidate": candidate},
                           {"model": out}, serving_dir=str(serving))
    photos = tmp_path / "photos"
    make_dataset(photos, train_pairs=6, test_pairs=2, size=(60, 60))
    outs = {"examples": tmp_path / "out" / "examples", "ingest_report": tmp_path / "out" / "report"}
    (tmp_path / "example_gen").mkdir()
    example_gen = _start_step(builds["kfp"], "ImageExampleGen", tmp_path / "example_gen", {}, outs,
                              input_base=str(photos))

    output = _finish(baseline)
    restored = tf.saved_model.load(str(out / "Format-Serving"))
    assert restored(tf.constant([2.0])).numpy().tolist() == [6.0]  # the 1700000500 model
    (artifact,) = output["artifacts"]["model"]["artifacts"]
    assert artifact["metadata"][lpm.SOURCE_PROPERTY] == "pushed"
    assert artifact["metadata"][lpm.VERSION_PROPERTY] == "1700000500"

    output = _finish(example_gen)
    (examples,) = output["artifacts"]["examples"]["artifacts"]
    assert json.loads(examples["metadata"]["split_names"]) == ["train", "eval", "test"]
    for split in ("train", "test"):
        assert tf.io.gfile.glob(str(outs["examples"] / f"Split-{split}" / "*.gz")), split
    (report,) = output["artifacts"]["ingest_report"]["artifacts"]
    assert report["metadata"]["status"] == "ok"

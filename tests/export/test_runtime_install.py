"""The minimal runtime install (issue 12, item 3): requirements/runtime.txt into a fresh venv, no TFX stack.

The venv is made once per session with `python -m venv --without-pip`, the pins installed with uv
(`--no-deps`, from uv's cache when it has the wheels: `--offline`; else from the registry, and the
test is skipped with the reason when neither works), then the package itself with `--no-deps` from
a copy of its sources (a build writes build/ and *.egg-info next to setup.py, which must not land in
the working tree). In it, TensorFlow cannot be imported, and `phone2dslr enhance` with a .tflite
file enhances a photo.
"""
from __future__ import annotations

import os
import pathlib
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

REPO = pathlib.Path(__file__).resolve().parents[2]
RUNTIME = REPO / "requirements" / "runtime.txt"
SOURCES = ("setup.py", "phone2dslr", "pipeline", "components", "trainer", "export", "kubeflow")


def _pins(path: pathlib.Path) -> dict[str, str]:
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==([^\s#;]+)", line.strip())
        if match:
            pins[match.group(1).lower().replace("_", "-")] = match.group(2)
    return pins


def _uv() -> str | None:
    here = pathlib.Path(sys.executable).parent / "uv"
    return str(here) if here.exists() else shutil.which("uv")


def _install(uv: str, python: pathlib.Path, *args: str) -> None:
    """uv pip install --no-deps ARGS: offline from uv's cache first, then from the registry."""
    command = [uv, "pip", "install", "--python", str(python), "--no-deps", "--quiet", *args]
    offline = subprocess.run(command + ["--offline"], capture_output=True, text=True, timeout=300)
    if offline.returncode == 0:
        return
    online = subprocess.run(command, capture_output=True, text=True, timeout=300)
    if online.returncode != 0:
        pytest.skip(f"cannot install {' '.join(args)}: not in uv's cache ({offline.stderr.strip()[-200:]}) and the "
                    f"registry failed ({online.stderr.strip()[-200:]})")


@pytest.fixture(scope="session")
def runtime_venv(tmp_path_factory) -> pathlib.Path:
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not installed (make install puts it in .venv/bin)")
    root = tmp_path_factory.mktemp("runtime")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    _install(uv, python, "-r", str(RUNTIME))
    source = root / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, source / name)
    _install(uv, python, str(source))
    return venv


def test_runtime_pins_are_the_lock_files():
    runtime, lock = _pins(RUNTIME), _pins(REPO / "requirements" / "lock.txt")
    assert {"ai-edge-litert", "numpy", "pillow", "pypng", "tqdm", "flatbuffers"} <= set(runtime)
    assert {name: lock.get(name) for name in runtime} == runtime
    assert not {"tensorflow", "tf-keras", "tfx", "keras", "apache-beam"} & set(runtime)


def test_enhance_runs_on_the_minimal_runtime_without_tensorflow(runtime_venv, tmp_path):
    python = runtime_venv / "bin" / "python"
    probe = subprocess.run([str(python), "-c", "import tensorflow"], capture_output=True, text=True, timeout=60)
    assert probe.returncode != 0 and "No module named 'tensorflow'" in probe.stderr

    import phone2dslr  # noqa: F401  (Keras/TF environment first: the model is made here, with TF)
    import tf_keras as keras

    from phone2dslr.export.tflite_convert import convert
    from phone2dslr.trainer.serving import export_image_generator

    keras.utils.set_random_seed(1)
    image = keras.Input((None, None, 3))
    out = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(
        keras.layers.Conv2D(4, 5, padding="same", activation="relu")(image))
    export_image_generator(keras.Model(image, out), str(tmp_path / "serving"))
    (tmp_path / "model.tflite").write_bytes(convert(str(tmp_path / "serving"), "float32"))
    Image.fromarray(np.random.default_rng(2).integers(0, 256, (60, 80, 3), dtype=np.uint8)).save(tmp_path / "p.jpg")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    result = subprocess.run([str(runtime_venv / "bin" / "phone2dslr"), "enhance", "p.jpg", "--model", "model.tflite",
                             "--out", "out", "--tile", "32", "--no-progress"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "receptive-field radius 3 px" in result.stderr and "enhanced 1 of 1" in result.stdout
    assert Image.open(tmp_path / "out" / "p.jpg").size == (80, 60)

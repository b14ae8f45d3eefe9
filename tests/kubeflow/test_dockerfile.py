"""kubeflow/Dockerfile, read without a Docker engine: it installs what `make install` installs."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re

from packaging.requirements import Requirement
from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

from tests.kubeflow.conftest import REPO

VENV, PYTHON = "/opt/venv", "python3.11"


def _instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in path.read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip()) for line in text.splitlines()
            if line.strip()]


def _stages() -> dict[str, list[tuple[str, str]]]:
    stages, name = {}, None
    for op, args in _instructions(REPO / "kubeflow" / "Dockerfile"):
        if op == "FROM":
            name = args.split(" AS ")[-1].strip() if " AS " in args else args
            stages[name] = [(op, args)]
        elif name:
            stages[name].append((op, args))
    return stages


def _global_args() -> dict[str, str]:
    result = {}
    for op, args in _instructions(REPO / "kubeflow" / "Dockerfile"):
        if op == "FROM":
            break
        if op == "ARG" and "=" in args:
            key, value = args.split("=", 1)
            result[key] = value
    return result


def _makefile_install_commands() -> list[str]:
    """The Makefile's `$(STAMP)` recipe with VENV=/opt/venv and PYTHON=python3.11, one command a line."""
    text = (REPO / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+)\s*[?:]?=\s*(.*?)\s*$", text, re.M))
    variables.update(VENV=VENV, PYTHON=PYTHON)
    recipe = re.search(r"^\$\(STAMP\):.*\n((?:\t.*\n)+)", text, re.M).group(1)
    commands = []
    for line in recipe.splitlines():
        line = line.strip()
        while "$(" in line:
            line = re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], line)
        commands.append(line)
    return commands


def _run_commands(args: str) -> list[str]:
    args = re.sub(r"^--mount=\S+\s+", "", args)
    return [c.strip() for c in args.split(" && ")]


def test_base_is_debian12_python311():
    assert _global_args()["PYTHON_IMAGE"] == "python:3.11-slim-bookworm"
    stages = _stages()
    for name in ("build", "runtime"):
        assert stages[name][0] == ("FROM", "${PYTHON_IMAGE} AS " + name)


def test_installs_with_the_makefiles_commands_and_make_install():
    build = _stages()["build"]
    runs = [_run_commands(args) for op, args in build if op == "RUN"]
    makefile = _makefile_install_commands()
    dependency_commands = makefile[:4]  # venv, uv, lock.txt, nodeps.txt
    assert dependency_commands[2].endswith("--no-deps -r requirements/lock.txt")
    assert dependency_commands[3].endswith("--no-deps -r requirements/nodeps.txt")
    assert dependency_commands in runs, "the cached dependency layer must be the Makefile's own commands"
    assert [op for op, _ in build[-2:]] == ["COPY", "RUN"] and build[-2][1] == ". ."
    assert _run_commands(build[-1][1]) == [f"make install VENV={VENV} PYTHON={PYTHON}"], "the install is make's"
    assert any(c.endswith("phone2dslr doctor") for c in makefile), "make install ends with the doctor"


def test_runtime_environment_and_entry_points():
    stages = _stages()
    env = " ".join(args for op, args in stages["runtime"] if op == "ENV")
    assert "TF_USE_LEGACY_KERAS=1" in env.split() and f"PATH={VENV}/bin:$PATH" in env.split()
    assert list(stages)[-1] == "pipeline", "the default target runs pipeline steps"
    (entry,) = [json.loads(args) for op, args in stages["pipeline"] if op == "ENTRYPOINT"]
    assert entry == list(kubeflow_v2_dag_runner.KUBEFLOW_TFX_CMD)
    assert importlib.util.find_spec(entry[-1]) is not None
    assert ("ENTRYPOINT", '["/opt/apache/beam/boot"]') in stages["beam-worker"]


def test_beam_worker_sdk_matches_the_locked_beam():
    locked = re.search(r"^apache-beam==(\S+)", (REPO / "requirements" / "lock.txt").read_text(), re.M).group(1)
    assert _global_args()["BEAM_VERSION"] == locked == importlib.metadata.version("apache-beam")
    assert _stages()["beam-sdk"][0] == ("FROM", "apache/beam_python3.11_sdk:${BEAM_VERSION} AS beam-sdk")


def test_gpu_requirements_are_tensorflows_cuda_extra_pinned():
    extra = {Requirement(r).name: Requirement(r).specifier for r in importlib.metadata.requires("tensorflow")
             if 'extra == "and-cuda"' in r}
    pins = {}
    for line in (REPO / "kubeflow" / "gpu-requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name] = version
    assert set(pins) == set(extra)
    for name, version in pins.items():
        assert version in extra[name], f"{name}=={version} outside TensorFlow's {extra[name]}"


def test_build_context_leaves_out_the_venv_and_runs():
    ignored = (REPO / "kubeflow" / "Dockerfile.dockerignore").read_text().split()
    assert {".venv", "runs", ".git", "demo_data"} <= set(ignored)

"""The project's import layers (README, "Architecture") and its one top-level name.

Walks every module's imports with `ast` and fails on an arrow that goes up a layer; checks from a
neutral folder that installing the project claims no generic top-level module name.
"""
from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FOLDERS = ("pipeline", "components", "trainer", "export", "kubeflow")

# Lower number = lower layer. A module may import its own layer and any layer below it.
LAYERS = {
    "phone2dslr.config": 0,
    "phone2dslr.features": 0,
    "phone2dslr.errors": 0,
    "phone2dslr.console": 0,
    "phone2dslr.trainer": 1,
    "phone2dslr.export": 2,
    "phone2dslr.components": 3,
    "phone2dslr.pipeline": 4,
    "phone2dslr.pipeline.local_runner": 5,
    "phone2dslr.kubeflow": 5,
    "phone2dslr.cli": 6,
}


def _layer(module: str) -> int | None:
    """Layer of a dotted module name: the longest LAYERS prefix that matches."""
    best = None
    for prefix in sorted(LAYERS, key=len):
        if module == prefix or module.startswith(prefix + "."):
            best = LAYERS[prefix]
    return best


def _modules() -> dict[str, pathlib.Path]:
    found = {}
    for folder in ("phone2dslr",) + FOLDERS:
        for path in (REPO / folder).rglob("*.py"):
            rel = path.relative_to(REPO).with_suffix("")
            parts = list(rel.parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            if parts[0] != "phone2dslr":
                parts = ["phone2dslr"] + parts
            found[".".join(parts)] = path
    return found


def _imports(path: pathlib.Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) for every import of a phone2dslr module, at any depth."""
    out = []
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            # `from phone2dslr import features` imports the submodule phone2dslr.features
            out += [(node.lineno, f"{base}.{a.name}" if _layer(f"{base}.{a.name}") is not None else base)
                    for a in node.names]
    return [(line, name) for line, name in out if name.split(".")[0] == "phone2dslr" or name.split(".")[0] in FOLDERS]


def test_no_module_imports_a_bare_top_level_folder():
    bare = [f"{p.relative_to(REPO)}:{line} imports {name}"
            for m, p in _modules().items() for line, name in _imports(p, m) if name.split(".")[0] in FOLDERS]
    assert not bare, "imports must go through the phone2dslr namespace:\n" + "\n".join(bare)


def test_imports_never_go_up_a_layer():
    wrong = []
    for module, path in _modules().items():
        if module == "phone2dslr":
            continue  # the package root: environment set-up and the lazy artifact-type lookup
        own = _layer(module)
        assert own is not None, f"{module} is in no layer; add it to LAYERS and the README"
        for line, name in _imports(path, module):
            target = _layer(name)
            if target is not None and target > own:
                wrong.append(f"{path.relative_to(REPO)}:{line}: {module} (layer {own}) imports {name} (layer {target})")
    assert not wrong, "imports that go up a layer:\n" + "\n".join(wrong)


def test_layer_walk_catches_an_upward_import(tmp_path):
    """The walk itself must be able to fail: a trainer module importing the pipeline is caught."""
    bad = tmp_path / "bad.py"
    bad.write_text("from phone2dslr.pipeline import pipeline\nimport phone2dslr.cli\n")
    names = [name for _, name in _imports(bad, "phone2dslr.trainer.bad")]
    assert [n for n in names if _layer(n) > LAYERS["phone2dslr.trainer"]] == names and len(names) == 2


@pytest.mark.parametrize("name", FOLDERS)
def test_folder_is_not_a_top_level_module(tmp_path, name):
    code = ("import importlib.util, sys; s = importlib.util.find_spec(sys.argv[1]); "
            "print(s.origin if s and s.origin else (list(s.submodule_search_locations) if s else 'none'))")
    found = subprocess.run([sys.executable, "-c", code, name], cwd=tmp_path, capture_output=True, text=True,
                           check=True).stdout.strip()
    assert str(REPO) not in found, f"`import {name}` resolves to this repository: {found}"


def test_subpackages_resolve_under_the_namespace(tmp_path):
    code = "import phone2dslr.trainer.losses as m, phone2dslr.config as c; print(m.__file__, c.__file__)"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    losses, config = out.stdout.split()
    assert losses == str(REPO / "trainer" / "losses.py") and config == str(REPO / "phone2dslr" / "config.py")

"""phone2dslr.errors.one_line: the one helper that words an exception as one line, and no copies of it."""
from __future__ import annotations

import ast
import pathlib

import pytest

from phone2dslr.config import ConfigError
from phone2dslr.errors import one_line

REPO = pathlib.Path(__file__).resolve().parents[2]


class ThirdPartyError(RuntimeError):
    """Stands for a TFX / Beam wrapper: defined in a test module, not in phone2dslr."""


def _raised(make):
    try:
        make()
    except BaseException as e:  # noqa: BLE001
        return e
    raise AssertionError("nothing raised")


def _wrapped_twice():
    """ConfigError (ours) -> RuntimeError -> ThirdPartyError, as an executor failure reaches the runner."""
    def inner():
        raise ConfigError("data.root: no such folder /x")

    def middle():
        try:
            inner()
        except ConfigError as e:
            raise RuntimeError("stage failed") from e

    try:
        middle()
    except RuntimeError as e:
        raise ThirdPartyError("pipeline failed\n  in node Trainer") from e


def test_message_on_one_line_with_type():
    assert one_line(ValueError("bad\n  value\tthere ")) == "ValueError: bad value there"


def test_without_type_is_the_message_alone():
    assert one_line(OSError("disk  full\n"), with_type=False) == "disk full"


def test_empty_message_falls_back_to_the_class_name():
    assert one_line(KeyError()) == "KeyError"
    assert one_line(RuntimeError(""), with_type=False) == "RuntimeError"


def test_limit_cuts_the_line():
    line = one_line(ValueError("x" * 1000), limit=50)
    assert len(line) == 50 and line.startswith("ValueError: xxx")
    assert len(one_line(ValueError("x" * 1000))) == 500  # the default


def test_prefer_ours_reports_the_innermost_phone2dslr_error():
    e = _raised(_wrapped_twice)
    assert one_line(e) == "ThirdPartyError: pipeline failed in node Trainer"
    assert one_line(e, prefer_ours=True) == "ConfigError: data.root: no such folder /x"


def test_prefer_ours_without_one_of_ours_reports_the_root_cause():
    def fail():
        try:
            raise KeyError("missing")
        except KeyError:
            raise RuntimeError("lookup failed")  # implicit context, not `from`

    assert one_line(_raised(fail), prefer_ours=True) == "KeyError: 'missing'"


def test_prefer_ours_survives_a_cycle_in_the_chain():
    a, b = RuntimeError("a"), RuntimeError("b")
    a.__cause__, b.__cause__ = b, a
    assert one_line(a, prefer_ours=True) == "RuntimeError: b"


@pytest.mark.parametrize("message, expected", [
    ("Some preamble\n<unknown>:0: error: 'tf.Foo' op is neither a custom op nor a flex op\nnote: x",
     "ConverterError: <unknown>:0: error: 'tf.Foo' op is neither a custom op nor a flex op"),
    ("first line\nsecond line", "ConverterError: first line"),
    ("\n\n", "ConverterError"),
])
def test_error_line_keeps_the_line_that_names_the_error(message, expected):
    class ConverterError(Exception):
        pass

    assert one_line(ConverterError(message), error_line=True) == expected


def test_no_module_keeps_its_own_copy():
    """Every one-line error message goes through phone2dslr.errors (calls and partials of it are fine)."""
    copies = []
    for folder in ("phone2dslr", "pipeline", "components", "trainer", "export", "kubeflow"):
        for path in (REPO / folder).rglob("*.py"):
            if path == REPO / "phone2dslr" / "errors.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and "one_line" in node.name:
                    copies.append(f"{path.relative_to(REPO)}:{node.lineno} def {node.name}")
    assert not copies, "use phone2dslr.errors.one_line instead of:\n" + "\n".join(copies)

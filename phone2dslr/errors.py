"""One-line error messages: the one helper every layer uses to turn an exception into a line.

Plain Python (no TensorFlow), at the bottom of the import layers, so ingest, training, export and
the CLI all word their errors the same way.
"""
from __future__ import annotations


def _chain(error: BaseException) -> list[BaseException]:
    """The exception and its causes / contexts, outermost first, each once."""
    chain: list[BaseException] = []
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        chain.append(e)
        e = e.__cause__ or e.__context__
    return chain


def one_line(error: BaseException, *, with_type: bool = True, limit: int = 500,
             prefer_ours: bool = False, error_line: bool = False) -> str:
    """The message of `error` on one line, at most `limit` characters.

    with_type: prefix the exception class name ("IngestError: ...").
    prefer_ours: walk the cause/context chain and report the innermost exception raised by
    phone2dslr code (our errors say what to fix; the wrappers around them, from TFX or Beam, do not).
    error_line: from a multi-line message keep the first line that mentions "error" (converter and
    interpreter messages put it after a preamble), else the first line; otherwise all lines are
    joined with single spaces.
    An empty message falls back to the class name.
    """
    chosen = error
    if prefer_ours:
        chain = _chain(error)
        ours = [x for x in chain if type(x).__module__.split(".")[0] == "phone2dslr"]
        chosen = ours[-1] if ours else chain[-1]
    if error_line:
        lines = [line.strip() for line in str(chosen).splitlines() if line.strip()]
        text = next((line for line in lines if "error" in line.lower()), lines[0] if lines else "")
    else:
        text = " ".join(str(chosen).split())
    name = type(chosen).__name__
    if with_type:
        text = f"{name}: {text}" if text else name
    return (text or name)[:limit]

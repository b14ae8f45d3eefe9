"""Listing, walking and reading the data folders: every name a file system can hold, every entry accounted for.

Names. TensorFlow's gfile (and TFX's input fingerprint, which globs through it) decodes every name
as UTF-8: one file named in Latin-1 (b"caf\\xe9.jpg", as old Windows tools and zip archives leave
them) raises UnicodeDecodeError while its folder is listed, and the whole ingestion dies before any
report is written. Beam's coders refuse Python's stand-in for such names too (lone surrogates are
not UTF-8). So local folders are listed with os.scandir on bytes paths, and a name that is not valid
UTF-8 is carried as text with the bad bytes escaped (b"caf\\xe9.jpg" -> "caf\\\\xe9.jpg", Python's
backslashreplace): that is what the report, the examples and the pair ids show, and `local_path`
turns it back into the real bytes when the file is read. Other file systems (gs://, s3://) go through
tf.io.gfile: object stores hold UTF-8 names only, and a folder whose listing still fails is set
aside as one entry, with the error, while the other folders go on.

Entries. `walk` yields every entry below a folder once, classified: an image to read, or a kind of
ignored entry (hidden, not an image, an image in a sub-folder when sub-folders are not read, ...)
that the ingest report lists with its reason. Nothing below a layout folder is passed over silently.
"""
from __future__ import annotations

import os
import re
from typing import Iterator, NamedTuple

import tensorflow as tf

from phone2dslr.errors import one_line

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"})

# Entry kinds: IMAGE is read; every other kind is listed in the report as ignored, with IGNORED_DETAIL.
IMAGE, HIDDEN, NOT_IMAGE, SUBFOLDER, NOT_REGULAR = "image", "hidden", "not_image", "subfolder", "not_regular"
UNLISTABLE, NAME_COLLISION, LINK_LOOP, NOT_LAYOUT = "unlistable", "name_collision", "link_loop", "not_layout"
OTHER_PHONE = "other_phone"  # a DPED root holds one folder per phone; data.phone picks one
IGNORED_DETAIL = {
    HIDDEN: "hidden file or folder (the name starts with a dot); not read",
    NOT_IMAGE: "not an image file extension (" + " ".join(sorted(IMAGE_EXTENSIONS)) + ")",
    SUBFOLDER: "image in a sub-folder, not read: data.recursive is false",
    NOT_REGULAR: "not a regular file or folder (a broken link, device, pipe or socket)",
    UNLISTABLE: "folder could not be listed",
    NAME_COLLISION: "name is not valid UTF-8, and escaped it equals another entry's name in the same folder",
    LINK_LOOP: "link to a folder that is already read",
    NOT_LAYOUT: "not part of the layout",
    OTHER_PHONE: "another phone's folder in the DPED data root, not read",
}
_DIR, _FILE, _OTHER = "dir", "file", "other"
_ESCAPED_BYTE = re.compile(rb"\\x([0-9a-f]{2})")


class Entry(NamedTuple):
    """One entry below the data root: `rel` is its path relative to the root, with '/' separators.

    kind: IMAGE or an ignored kind; escaped: the name held bytes that are not UTF-8 (shown as \\xNN);
    detail: extra words for the report (the listing error of an UNLISTABLE folder).
    """

    rel: str
    kind: str
    escaped: bool = False
    detail: str = ""


class _Child(NamedTuple):
    name: str  # as text, non-UTF-8 bytes escaped
    escaped: bool
    kind: str  # _DIR, _FILE or _OTHER
    real: str | bytes  # the path to open: bytes for local names that are not UTF-8


def is_local(path: str) -> bool:
    """True for a plain path; False for a URL of a TensorFlow file system (gs://, s3://, hdfs://)."""
    return "://" not in path


def is_image_name(name: str) -> bool:
    """An image file name: not hidden, with one of IMAGE_EXTENSIONS (any case)."""
    return not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def escape_name(raw: bytes) -> tuple[str, bool]:
    """(text, escaped): the name decoded as UTF-8, else with each undecodable byte written as \\xNN."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "backslashreplace"), True


def local_path(path: str) -> str | bytes:
    """The real path of a local `path` that may hold escaped names: bytes when an escape is undone.

    A real name may contain a literal backslash-x, so the path as written wins when it exists.
    """
    if "\\x" not in path or os.path.lexists(path):
        return path
    return _ESCAPED_BYTE.sub(lambda m: bytes([int(m.group(1), 16)]), os.fsencode(path))


def read_bytes(path: str) -> bytes:
    """The whole file; raises OSError / tf.errors.OpError when it cannot be read."""
    if is_local(path):
        with open(local_path(path), "rb") as f:
            return f.read()
    with tf.io.gfile.GFile(path, "rb") as f:
        return f.read()


def stat(path: str) -> tuple[int, int]:
    """(size in bytes, modification time in whole seconds) of a file."""
    if is_local(path):
        s = os.stat(local_path(path))
        return s.st_size, int(s.st_mtime)
    s = tf.io.gfile.stat(path)
    return s.length, s.mtime_nsec // 1_000_000_000


def _children(path: str | bytes) -> list[_Child]:
    """The entries of one folder, sorted by name; raises OSError (or UnicodeDecodeError remotely)."""
    out = []
    if isinstance(path, bytes) or is_local(path):
        with os.scandir(os.fsencode(path)) as it:
            for e in it:
                name, escaped = escape_name(e.name)
                try:  # is_dir / is_file follow links: a broken link is neither
                    kind = _DIR if e.is_dir() else _FILE if e.is_file() else _OTHER
                except OSError:
                    kind = _OTHER
                out.append(_Child(name, escaped, kind, e.path))
        return sorted(out, key=_order)
    for name in tf.io.gfile.listdir(path):
        if name.endswith("/"):  # object stores mark sub-folders with a trailing slash
            out.append(_Child(name.rstrip("/"), False, _DIR, os.path.join(path, name.rstrip("/"))))
            continue
        full = os.path.join(path, name)
        # One listing call per folder: only names without an image extension are checked for being
        # folders, so a bucket of photos costs no call per file.
        kind = _FILE if is_image_name(name) or not tf.io.gfile.isdir(full) else _DIR
        out.append(_Child(name, False, kind, full))
    return sorted(out, key=_order)


def _order(child: _Child) -> tuple[str, bool]:
    return child.name, child.escaped


def list_children(root: str, rel: str) -> list[tuple[str, bool, bool]]:
    """(name, is_folder, escaped) for each entry of the folder `rel` below `root`; raises like _children."""
    return [(c.name, c.kind == _DIR, c.escaped) for c in _children(local_path(os.path.join(root, rel))
                                                                    if is_local(root) else os.path.join(root, rel))]


def walk(root: str, directory: str, recursive: bool) -> Iterator[Entry]:
    """Every entry below `root/directory` (relative path `directory`), classified, in a stable order.

    Images directly in `directory` are IMAGE; images deeper are IMAGE when `recursive`, else
    SUBFOLDER. Hidden entries are not descended into; an empty folder yields nothing (it holds no
    photo). Links to folders are followed once; a link back to `directory` or to a folder above it
    (e.g. `loop -> ..`, which would show the other side's photos as this side's) is a LINK_LOOP entry.
    """
    start = os.path.join(root, directory)
    real = local_path(start) if is_local(root) else start
    yield from _walk(real, directory, True, recursive, _ancestors(real))


def _ancestors(real: str | bytes) -> set:
    """(st_dev, st_ino) of every folder above `real` (a local path), so no link leads back up."""
    if not (isinstance(real, bytes) or is_local(real)):
        return set()
    found, here = set(), os.path.realpath(real)
    while True:
        parent = os.path.dirname(here)
        if parent == here:
            return found
        try:
            s = os.stat(parent)
            found.add((s.st_dev, s.st_ino))
        except OSError:
            pass
        here = parent


def _walk(real: str | bytes, rel_dir: str, top: bool, recursive: bool, seen: set) -> Iterator[Entry]:
    if isinstance(real, bytes) or is_local(real):
        try:
            s = os.stat(real)
        except OSError as e:
            yield Entry(rel_dir, UNLISTABLE, False, one_line(e))
            return
        if (s.st_dev, s.st_ino) in seen:
            yield Entry(rel_dir, LINK_LOOP)
            return
        seen.add((s.st_dev, s.st_ino))
    try:
        children = _children(real)
    except (OSError, UnicodeDecodeError, tf.errors.OpError) as e:
        yield Entry(rel_dir, UNLISTABLE, False, one_line(e))
        return
    plain = {c.name for c in children if not c.escaped}
    for child in children:
        rel = f"{rel_dir}/{child.name}"
        if child.name.startswith("."):
            yield Entry(rel, HIDDEN, child.escaped)
        elif child.escaped and child.name in plain:
            yield Entry(rel, NAME_COLLISION, True)
        elif child.kind == _DIR:
            yield from _walk(child.real, rel, False, recursive, seen)
        elif child.kind == _OTHER:
            yield Entry(rel, NOT_REGULAR, child.escaped)
        elif not is_image_name(child.name):
            yield Entry(rel, NOT_IMAGE, child.escaped)
        else:
            yield Entry(rel, IMAGE if top or recursive else SUBFOLDER, child.escaped)


def ignored_detail(entry: Entry) -> str:
    """The report's words for an ignored entry."""
    text = IGNORED_DETAIL[entry.kind]
    return f"{text}: {entry.detail}" if entry.detail else text

"""Argument checks of `phone2dslr enhance`: the mistakes a person makes on the command line.

A missing or misspelt path, the pipeline's serving folder instead of one model in it, an output
folder that is a file or an input's folder, a tile smaller than the model's receptive field: each
raises EnhanceError with one line that says what to pass instead, before any photo is touched.
All but `check_tile` only look at the file system (no TensorFlow), so a mistake costs no model
load and is reported in well under a second. Used by export/enhance.py and phone2dslr/cli.py.
"""
from __future__ import annotations

import difflib
import os
import re
from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from phone2dslr.export.enhance import Enhancer

PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")
DEFAULT_TILE = 512  # tile side in pixels (enhance --tile's default)
# Overlap (pixels) assumed for a fixed-size .tflite whose graph and metadata give no receptive field:
# more than DPED's 36 (radius 18); a model that needs more must say so (metadata, --overlap).
DEFAULT_OVERLAP = 64


class EnhanceError(ValueError):
    """An argument cannot be used: the model, an input, the output folder or the tile (one-line message
    that says what to pass instead)."""


# What --model takes, for the messages that reject a path.
_PASS_MODEL = ("pass a .tflite file, a SavedModel folder (with saved_model.pb) or a TF1 checkpoint prefix "
               "(e.g. models_orig/iphone_orig)")
_PASS_PHOTOS = "pass JPEG/PNG files or folders of them"



def check_model_path(path: str) -> str:
    """What kind of model `path` is: "tflite", "saved_model" or "checkpoint" (a TF1 prefix).

    A TFLite file is recognised by its flatbuffer identifier (TFL3), whatever its name. Raises
    EnhanceError (one line) for a missing path (naming a close match in its folder), a folder that is
    not a SavedModel (naming the SavedModel or .tflite one level down: the pipeline's serving folder,
    a version's tflite/ folder, an import-dped output folder), a SavedModel's saved_model.pb or a
    checkpoint's .index / .data file (naming the folder or prefix to pass), or any other file.
    """
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            return "saved_model"
        if os.path.isfile(os.path.join(path, "checkpoint")):
            return "checkpoint"
        near = _models_one_level_down(path)
        if near:
            raise EnhanceError(f"model {path} is a folder without saved_model.pb; pass {near}")
        raise EnhanceError(f"model {path} is a folder but not a SavedModel (no saved_model.pb in it or one "
                           f"level down); {_PASS_MODEL}")
    if os.path.isfile(path):
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as e:
            raise EnhanceError(f"cannot read model {path}: {e.strerror}") from None
        if head[4:8] == b"TFL3":  # the flatbuffer file identifier every TFLite converter writes
            return "tflite"
        folder, name = os.path.split(path)
        if name == "saved_model.pb":
            raise EnhanceError(f"model {path} is the graph file of a SavedModel; pass its folder: {folder or '.'}")
        prefix = _checkpoint_prefix(path)
        if prefix is not None:
            if os.path.basename(folder) == "variables" and os.path.isfile(
                    os.path.join(os.path.dirname(folder), "saved_model.pb")):
                saved_model = os.path.dirname(folder) or "."
                raise EnhanceError(f"model {path} is a SavedModel's variables file; pass the SavedModel folder: "
                                   f"{saved_model}")
            raise EnhanceError(f"model {path} is one file of a TF checkpoint; pass its prefix: {prefix}")
        if name.lower().endswith(".tflite"):
            raise EnhanceError(f"model {path} is not a TFLite model (no TFL3 flatbuffer identifier; damaged or "
                               "renamed?); pass a .tflite file that the pipeline or import-dped wrote")
        raise EnhanceError(f"model {path} is a file but not a TFLite model; {_PASS_MODEL}")
    if os.path.isfile(path + ".index"):
        return "checkpoint"
    raise _missing("model", path, _PASS_MODEL)


def check_inputs(inputs: Iterable[str]) -> None:
    """EnhanceError (one line) unless every input exists and every input folder has JPEG/PNG files.

    A missing input names a close match in its folder ("did you mean"); a folder whose photos are only
    in subfolders (folders are not searched recursively) names the first such subfolder. A file's
    content is not read here: one that is not a readable JPEG/PNG fails as a photo when processed.
    """
    inputs = list(inputs)
    if not inputs:
        raise EnhanceError(f"no inputs; {_PASS_PHOTOS}")
    for path in inputs:
        if os.path.isdir(path):
            names = _listdir(path, f"input folder {path}")
            if any(_is_photo_name(path, n) for n in names):
                continue
            subfolders = [os.path.join(path, n) for n in names if os.path.isdir(os.path.join(path, n))]
            with_photos = [sub for sub in subfolders
                           if any(_is_photo_name(sub, m) for m in _listdir(sub, "input folder"))]
            if with_photos:
                more = f" (or its {len(with_photos) - 1} other subfolder(s) with photos)" if with_photos[1:] else ""
                raise EnhanceError(f"input folder {path} has no .jpg/.jpeg/.png files and subfolders are not "
                                   f"searched; pass {with_photos[0]}{more}")
            others = sum(os.path.isfile(os.path.join(path, n)) for n in names)
            what = f"{others} other file(s)" if others else "empty"
            raise EnhanceError(f"input folder {path} has no .jpg/.jpeg/.png files ({what}); {_PASS_PHOTOS}")
        if os.path.islink(path) and not os.path.exists(path):
            raise EnhanceError(f"input {path} is a broken link (to {os.readlink(path)}); {_PASS_PHOTOS}")
        if not os.path.exists(path):
            raise _missing("input", path, _PASS_PHOTOS)
        if not os.path.isfile(path):  # a pipe or device: reading it could block forever
            raise EnhanceError(f"input {path} is not a regular file or folder; {_PASS_PHOTOS}")


def check_out_dir(out_dir: str, inputs: Iterable[str] = ()) -> None:
    """EnhanceError (one line) when `out_dir` cannot be the output folder.

    Rejected: an existing file, a path that runs through a file, a folder (or the nearest existing
    parent of a new one) without write permission, an input folder, and the folder of an input photo
    (its output, of the same name, would replace it). The message suggests a sibling folder.
    """
    instead = _sibling(out_dir)
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise EnhanceError(f"output folder {out_dir} is a file (outputs keep the inputs' names inside a "
                               f"folder); pass a folder, created if missing, e.g. {instead}")
        if not os.access(out_dir, os.W_OK | os.X_OK):
            raise EnhanceError(f"output folder {out_dir} is not writable; pass a folder you can write to")
    else:
        parent = os.path.dirname(os.path.abspath(out_dir))
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise EnhanceError(f"output folder {out_dir} cannot be created: {parent} is a file; pass a path "
                               "whose parents are folders")
        if not os.access(parent, os.W_OK | os.X_OK):
            raise EnhanceError(f"output folder {out_dir} cannot be created: {parent} is not writable; pass a "
                               "folder you can write to")
        return  # a new folder holds no input
    for path in inputs:
        if os.path.isdir(path) and os.path.samefile(path, out_dir):
            raise EnhanceError(f"output folder {out_dir} is also an input folder: the enhanced photos would "
                               f"replace the originals; pass another folder, e.g. {instead}")
        if (os.path.isfile(path) and path.lower().endswith(PHOTO_SUFFIXES)
                and os.path.samefile(os.path.dirname(path) or ".", out_dir)):
            raise EnhanceError(f"output folder {out_dir} holds the input {path}: its enhanced photo would "
                               f"replace it; pass another folder, e.g. {instead}")


def check_tile(enhancer: Enhancer, tile: int) -> None:
    """EnhanceError (one line) when `tile` (pixels per side; 0: whole image) is negative or too small
    for the model: tiles overlap by twice its receptive-field radius, so a tile must be at least
    `enhancer.min_tile`. The message names that smallest tile."""
    if tile < 0:
        raise EnhanceError(f"tile {tile} is negative; pass --tile {DEFAULT_TILE} (pixels per side) or --tile 0 "
                           "for whole images")
    smallest = enhancer.min_tile
    if tile == 0 or smallest is None or tile >= smallest:
        return
    better = f", e.g. the default {DEFAULT_TILE} (less overlap computed twice)" if DEFAULT_TILE >= smallest else ""
    raise EnhanceError(f"tile {tile} is too small for this model (receptive-field radius {(smallest - 1) // 2} px, "
                       f"so tiles overlap by {smallest - 1} px): the smallest tile that works is {smallest}; pass "
                       f"--tile {smallest} or more{better}, or --tile 0 for whole images")


def _listdir(folder: str, what: str) -> list[str]:
    try:
        return sorted(os.listdir(folder))
    except OSError as e:
        raise EnhanceError(f"cannot read {what} {folder}: {e.strerror}") from None


def _is_photo_name(folder: str, name: str) -> bool:
    return name.lower().endswith(PHOTO_SUFFIXES) and os.path.isfile(os.path.join(folder, name))


def _missing(what: str, path: str, instead: str) -> EnhanceError:
    """The error for a path that does not exist: says so of its folder too, and names a close match
    in the folder ("did you mean") or else `instead`."""
    folder = os.path.dirname(os.path.normpath(path))
    if folder and not os.path.isdir(folder):
        return EnhanceError(f"{what} {path} does not exist (nor does its folder {folder}); {instead}")
    close = _close_name(folder, os.path.basename(os.path.normpath(path)))
    return EnhanceError(f"{what} {path} does not exist; " + (f"did you mean {close}?" if close else instead))


def _close_name(folder: str, name: str) -> str | None:
    """The path of an entry of `folder` that `name` (missing) most likely meant: the name in another
    case, the same stem with another suffix (.jpeg for .jpg) or a near spelling; None when none.
    Names that differ only in their numbers (IMG_0001.jpg for IMG_0002.jpg) are other photos, not typos,
    and stems under 4 characters have no near spelling (z.jpg is not a typo of a.jpg)."""
    try:
        by_lower = {n.lower(): n for n in os.listdir(folder or ".")}
    except OSError:
        return None
    wanted = name.lower()
    stem = os.path.splitext(wanted)[0]
    same_stem = [n for n in sorted(by_lower) if os.path.splitext(n)[0] == stem]
    numbers = re.compile(r"\d+")
    close = [n for n in difflib.get_close_matches(wanted, list(by_lower), n=3, cutoff=0.8)
             if numbers.sub("#", n) != numbers.sub("#", wanted)] if len(stem) >= 4 else []
    match = wanted if wanted in by_lower else next(iter(same_stem + close), None)
    return None if match is None else os.path.join(folder, by_lower[match])


def _checkpoint_prefix(path: str) -> str | None:
    """The TF checkpoint prefix of its .index or .data-NNNNN-of-NNNNN file, else None."""
    for marker in (".index", ".data-"):
        cut = path.rfind(marker)
        if cut > 0 and os.path.isfile(path[:cut] + ".index"):
            return path[:cut]
    return None


def _tflite_files(folder: str) -> list[str]:
    """The .tflite files of a folder, float32 first (the reference variant), then by name."""
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    names = [n for n in names if n.lower().endswith(".tflite") and os.path.isfile(os.path.join(folder, n))]
    return [os.path.join(folder, n) for n in sorted(names, key=lambda n: (n != "float32.tflite", n))]


def _models_one_level_down(folder: str) -> str:
    """'X or Y': the models a folder that is not one holds one level down, best first, or ''.

    Its own .tflite files (a version's tflite/ folder, an import-dped output folder), SavedModel
    subfolders (the pipeline's serving folder: the newest version, whose names are Unix times) with
    their tflite/ files, and subfolders of .tflite files.
    """
    found: list[str] = []
    tflites = _tflite_files(folder)
    if tflites:
        others = ", ".join(os.path.basename(t) for t in tflites[1:])
        found.append(tflites[0] + (f" (or {others} there)" if others else ""))
    subfolders = [os.path.join(folder, n) for n in _listdir(folder, "model folder")
                  if os.path.isdir(os.path.join(folder, n))]
    saved = sorted((s for s in subfolders if os.path.isfile(os.path.join(s, "saved_model.pb"))),
                   key=_version_key, reverse=True)
    if saved:
        newest = f", the newest of {len(saved)}" if len(saved) > 1 else ""
        found.append(f"{saved[0]} (SavedModel{newest})")
        found.extend(_tflite_files(os.path.join(saved[0], "tflite"))[:1] or _tflite_files(saved[0])[:1])
    found.extend(t for s in subfolders if s not in saved for t in _tflite_files(s)[:1])
    return " or ".join(found[:3])


def _version_key(folder: str) -> tuple[bool, int, str]:
    """Sort key of model version folders: Unix-time names by number (after any other name)."""
    name = os.path.basename(folder)
    return (name.isdigit(), int(name) if name.isdigit() else 0, name)


def _sibling(out_dir: str) -> str:
    """A folder beside `out_dir` to suggest instead of it: photos -> photos_enhanced."""
    norm = os.path.normpath(out_dir)
    if os.path.basename(norm) in (".", "..", ""):
        return os.path.join(norm, "enhanced")
    stem = os.path.splitext(norm)[0] if os.path.isfile(norm) else norm
    return stem + "_enhanced"

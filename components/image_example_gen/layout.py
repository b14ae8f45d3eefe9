"""Where the photos are: folder layouts, listing and pairing by name (the split is in splitting.py).

Listing happens inside Beam (one element per folder), so a folder of half a million photos is
never held as one Python list in the launching process or shipped inside the job graph; only the
handful of folder names below travel with the pipeline.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
from dataclasses import dataclass
from typing import Iterable, NamedTuple

import tensorflow as tf

from phone2dslr import features as F
from phone2dslr.errors import one_line
from phone2dslr.components.image_example_gen.listing import (HIDDEN, IMAGE, IMAGE_EXTENSIONS,  # noqa: F401
                                                             NOT_LAYOUT, OTHER_PHONE, UNLISTABLE, Entry, is_image_name,
                                                             list_children, walk)

DPED_DSLR_FOLDER = "canon"
DPED_FULL_SIZE_FOLDER = "full_size_test_images"  # shown by the run report, not ingested
LAYOUTS = ("dped", "unpaired")
PAIRINGS = ("paired", "unpaired")
PHONE_SIDE, DSLR_SIDE = "phone", "dslr"
PHOTO_SIDE = "photo"  # a photo-manifest row joining a unit in GroupByName (see splitting.py)
TRAIN_GROUP, TEST_GROUP = "train", "test"  # folder groups; the train group is split into train/eval


class IngestError(ValueError):
    """Input that cannot become a usable dataset; the message is one line naming what to fix."""


@dataclass(frozen=True)
class IngestOptions:
    """The image ExampleGen's parameters (the fields of DataConfig it uses), checked once."""

    input_base: str
    layout: str = "dped"
    phone: str = "iphone"
    pairing: str = "paired"
    patch_size: int = 100
    patch_stride: int = 0
    patches_per_image: int = 0
    eval_percent: int = 10
    max_reject_fraction: float = 0.5
    seed: int = 0
    recursive: bool = False  # read images in sub-folders of the layout folders (else list them as ignored)

    def __post_init__(self) -> None:
        problems = []
        if self.layout not in LAYOUTS:
            problems.append(f"layout {self.layout!r} is not one of {', '.join(LAYOUTS)}")
        if self.pairing not in PAIRINGS:
            problems.append(f"pairing {self.pairing!r} is not one of {', '.join(PAIRINGS)}")
        if min(self.patch_size, self.patch_stride, self.patches_per_image) < 0:
            problems.append("patch_size, patch_stride and patches_per_image must be >= 0")
        if not 0 <= self.eval_percent < 100:
            problems.append(f"eval_percent {self.eval_percent} must be in [0, 100)")
        if not 0.0 <= self.max_reject_fraction <= 1.0:
            problems.append(f"max_reject_fraction {self.max_reject_fraction} must be in [0, 1]")
        if not self.phone or "/" in self.phone:
            problems.append(f"phone {self.phone!r} must be a folder name")
        if problems:
            raise IngestError("image ExampleGen: " + "; ".join(problems))

    @property
    def stride(self) -> int:
        return self.patch_stride or self.patch_size

    @classmethod
    def from_dict(cls, values: dict) -> "IngestOptions":
        """Build from exec_properties (which also hold unrelated keys, and floats may come as ints)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names and v is not None}
        if "max_reject_fraction" in kwargs:
            kwargs["max_reject_fraction"] = float(kwargs["max_reject_fraction"])
        if "recursive" in kwargs:
            kwargs["recursive"] = bool(kwargs["recursive"])  # an int exec property (0/1)
        return cls(**kwargs)


class Source(NamedTuple):
    """One folder of one side: `directory` is relative to the data root."""

    group: str
    side: str
    directory: str
    id_prefix: str


class Unit(NamedTuple):
    """Everything sharing one name stem within a folder group: normally one phone + one DSLR file.

    photo / scene: the source photo and scene a photo manifest names for the stem ("" when none).
    """

    group: str
    pair_id: str
    phone: tuple[str, ...]
    dslr: tuple[str, ...]
    photo: str = ""
    scene: str = ""


def sources(options: IngestOptions) -> list[Source]:
    """The folders a layout reads, in a fixed order."""
    if options.layout == "dped":
        p = options.phone
        train, test = f"{p}/training_data", f"{p}/test_data/patches"
        return [Source(TRAIN_GROUP, PHONE_SIDE, f"{train}/{p}", f"{p}/training_data"),
                Source(TRAIN_GROUP, DSLR_SIDE, f"{train}/{DPED_DSLR_FOLDER}", f"{p}/training_data"),
                Source(TEST_GROUP, PHONE_SIDE, f"{test}/{p}", f"{p}/test_data"),
                Source(TEST_GROUP, DSLR_SIDE, f"{test}/{DPED_DSLR_FOLDER}", f"{p}/test_data")]
    return [Source(TRAIN_GROUP, PHONE_SIDE, "trainA", "train"),
            Source(TRAIN_GROUP, DSLR_SIDE, "trainB", "train"),
            Source(TEST_GROUP, PHONE_SIDE, "testA", "test"),
            Source(TEST_GROUP, DSLR_SIDE, "testB", "test")]


def file_patterns(options: IngestOptions) -> dict[str, str]:
    """Glob patterns (relative to the root) of the layout folders; shown in input_config (the driver,
    driver.py, fingerprints by walking the folders, since TFX's glob dies on a non-UTF-8 name)."""
    return {f"{s.group}_{s.side}": f"{s.directory}/*" for s in sources(options)}


def check_layout(options: IngestOptions) -> list[Source]:
    """Fail before Beam starts, naming the expected folders, when the layout is not there."""
    root = options.input_base
    if not tf.io.gfile.isdir(root):
        raise IngestError(f"image ExampleGen: data root {root} does not exist or is not a folder")
    found = sources(options)
    missing = [os.path.join(root, s.directory) for s in found
               if not tf.io.gfile.isdir(os.path.join(root, s.directory))]
    if missing:
        hint = ""
        if options.layout == "dped" and not tf.io.gfile.isdir(os.path.join(root, options.phone)):
            present = [name for name, is_folder, _ in list_children(root, "") if is_folder]
            hint = f" (phone folders present: {', '.join(present) or 'none'})"
        raise IngestError(f"image ExampleGen: layout {options.layout!r} expects folder(s) "
                          f"{', '.join(missing)}, missing{hint}")
    return found


class Listing(NamedTuple):
    """One layout folder, listed: ((group, pair_id), (side, relative path)) per image to read, the
    ignored entries (listing.Entry) and how many names were escaped (not valid UTF-8)."""

    images: list[tuple[tuple[str, str], tuple[str, str]]]
    ignored: list[Entry]
    escaped: int


def list_source(root: str, source: Source, recursive: bool = False) -> Listing:
    """Lists one layout folder and, to account for every entry, everything below it.

    With `recursive`, an image in a sub-folder is read and pairs by its path below the side's
    folder (trainA/batch2/7.jpg with trainB/batch2/7.jpg: pair id "train/batch2/7"); without, it is
    an ignored SUBFOLDER entry, listed in the report with the way to read it.
    """
    images, ignored, escaped = [], [], 0
    for entry in walk(root, source.directory, recursive):
        escaped += entry.escaped
        if entry.kind != IMAGE:
            ignored.append(entry)
            continue
        stem = os.path.splitext(entry.rel[len(source.directory) + 1:])[0]
        images.append(((source.group, f"{source.id_prefix}/{stem}"), (source.side, entry.rel)))
    return Listing(images, ignored, escaped)


def layout_folders(options: IngestOptions) -> dict[str, set[str]]:
    """The folders above the layout's image folders: {relative folder: the names the layout uses there}."""
    if options.layout == "dped":
        p = options.phone
        return {"": {p}, p: {"training_data", "test_data"},
                f"{p}/training_data": {p, DPED_DSLR_FOLDER, "photos.csv"},
                f"{p}/test_data": {"patches", "photos.csv", DPED_FULL_SIZE_FOLDER},
                f"{p}/test_data/patches": {p, DPED_DSLR_FOLDER}}
    return {"": {"trainA", "trainB", "testA", "testB", "train_photos.csv", "test_photos.csv"}}


def layout_extras(options: IngestOptions) -> Listing:
    """Entries beside the layout's folders that no part of the layout reads (another phone's folder,
    a misspelt trainA): each is one ignored entry, not descended into."""
    ignored, escaped = [], 0
    for folder, used in layout_folders(options).items():
        try:
            children = list_children(options.input_base, folder)
        except (OSError, UnicodeDecodeError, tf.errors.OpError) as e:
            ignored.append(Entry(folder, UNLISTABLE, False, one_line(e)))
            continue
        for name, is_folder, was_escaped in children:
            escaped += was_escaped
            if name in used:
                continue
            rel = f"{folder}/{name}" if folder else name
            if name.startswith("."):
                ignored.append(Entry(rel, HIDDEN, was_escaped))
            elif options.layout == "dped" and not folder and is_folder:
                ignored.append(Entry(rel, OTHER_PHONE, was_escaped, f"data.phone is {options.phone}"))
            else:
                what = "folder" if is_folder else "file"
                ignored.append(Entry(rel, NOT_LAYOUT, was_escaped, f"a {what}; the {options.layout} layout uses "
                                     f"only {', '.join(sorted(used))} in {folder or 'the data root'}"))
    return Listing([], ignored, escaped)


def make_unit(key: tuple[str, str], members: Iterable[tuple[str, object]]) -> Unit:
    """One unit from its GroupByName members: (side, relative path) per file, (PHOTO_SIDE, (photo, scene))
    per manifest row (the smallest wins when a stem is listed twice, so the result is order-free)."""
    group, pair_id = key
    members = list(members)
    phone = tuple(sorted(rel for side, rel in members if side == PHONE_SIDE))
    dslr = tuple(sorted(rel for side, rel in members if side == DSLR_SIDE))
    photo, scene = min((tuple(v) for side, v in members if side == PHOTO_SIDE), default=("", ""))
    return Unit(group, pair_id, phone, dslr, photo, scene)


def stable_int(text: str) -> int:
    """A 64-bit integer from text that is the same in every process and Python version."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


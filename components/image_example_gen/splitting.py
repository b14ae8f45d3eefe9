"""Which source photo (and scene) each file comes from, and the train/eval split made by it.

DPED's training folders hold 100x100 patches cut from larger photos, named 0.jpg, 1.jpg, ...: the
name says nothing about the photo. Splitting by file would put patches of one photo (overlapping
ones, even) in both train and eval, and pick the "best" epoch on data the model trained on. So a
layout may carry a photo manifest, `photos.csv`, naming for each file stem its source photo and,
optionally, its scene (several photos of one scene, e.g. the two views of a stereo pair):

    name,photo,scene
    0,astronaut,astronaut
    1,motorcycle_left,motorcycle

The split hashes the scene id (else the photo id, else - no manifest row - the file's own id), so
every patch of a photo, and every photo of a scene, lands in the same split.
"""
from __future__ import annotations

import csv
import io
import os
from typing import Iterable, Iterator, NamedTuple

import tensorflow as tf

from phone2dslr import features as F
from phone2dslr.components.image_example_gen.layout import (PHOTO_SIDE, TEST_GROUP, TRAIN_GROUP, IngestError,
                                                            IngestOptions, Unit, is_image_name, stable_int)

MANIFEST_FILE = "photos.csv"
MANIFEST_COLUMNS = ("name", "photo", "scene")  # scene is optional; empty means "the photo is its own scene"
SPLIT_BY = ("scene", "photo", "file")


class Manifest(NamedTuple):
    """One folder group's manifest: `path` relative to the data root; ids are `<id_prefix>/<stem>`."""

    group: str
    id_prefix: str
    path: str


def manifests(options: IngestOptions) -> list[Manifest]:
    """Where each folder group's manifest would be; a missing manifest is not an error.

    dped: `<phone>/training_data/photos.csv` and `<phone>/test_data/photos.csv`, beside the
    phone and canon folders; unpaired: `train_photos.csv` and `test_photos.csv` in the root.
    """
    if options.layout == "dped":
        p = options.phone
        return [Manifest(TRAIN_GROUP, f"{p}/training_data", f"{p}/training_data/{MANIFEST_FILE}"),
                Manifest(TEST_GROUP, f"{p}/test_data", f"{p}/test_data/{MANIFEST_FILE}")]
    return [Manifest(TRAIN_GROUP, "train", f"train_{MANIFEST_FILE}"),
            Manifest(TEST_GROUP, "test", f"test_{MANIFEST_FILE}")]


def check_manifests(options: IngestOptions) -> list[Manifest]:
    """The manifests present, after checking their header row (before Beam starts: a one-line error)."""
    present = []
    for m in manifests(options):
        path = os.path.join(options.input_base, m.path)
        if not tf.io.gfile.exists(path):
            continue
        with tf.io.gfile.GFile(path, "r") as f:
            header = [c.strip() for c in next(csv.reader([f.readline()]), [])]
        if not {"name", "photo"} <= set(header) or not set(header) <= set(MANIFEST_COLUMNS):
            raise IngestError(f"image ExampleGen: {path} must start with a header row of columns "
                              f"{','.join(MANIFEST_COLUMNS)} (scene optional), got {','.join(header) or 'nothing'}")
        present.append(m)
    return present


ManifestRow = tuple[tuple[str, str], tuple[str, tuple[str, str]]]  # ((group, pair_id), (PHOTO_SIDE, (photo, scene)))


def read_manifest(root: str, manifest: Manifest) -> Iterator[ManifestRow | None]:
    """((group, pair_id), ("photo", (photo, scene))) per row, the shape GroupByName joins on; None per bad row.

    `name` is a file name stem (an image extension, if given, is dropped); a row without a name or
    a photo is bad (the caller counts it). An empty scene means the photo is its own scene.
    """
    with tf.io.gfile.GFile(os.path.join(root, manifest.path), "r") as f:
        for row in csv.DictReader(io.StringIO(f.read())):
            name = (row.get("name") or "").strip()
            name = os.path.splitext(name)[0] if is_image_name(name) else name
            photo, scene = (row.get("photo") or "").strip(), (row.get("scene") or "").strip()
            if not (name and photo):
                yield None
                continue
            yield (manifest.group, f"{manifest.id_prefix}/{name}"), (PHOTO_SIDE, (photo, scene or photo))


def split_by(unit: Unit) -> str:
    """What the unit's split was decided by: "scene", "photo" or "file" (not in a manifest)."""
    if not unit.photo:
        return "file"
    return "scene" if unit.scene != unit.photo else "photo"


def split_key(unit: Unit) -> str:
    """The id that is hashed to split the unit: its scene, else its photo, else its own pair id."""
    return unit.scene or unit.photo or unit.pair_id


def photo_id(unit: Unit) -> str:
    """The unit's source photo; a file missing from the manifest counts as a photo of its own."""
    return unit.photo or unit.pair_id


def eval_cutoff(hashes: Iterable[int], eval_percent: int) -> int:
    """The 64-bit hash below which a group (scene / photo) goes to eval.

    Of the n distinct group hashes, the k smallest go to eval, k = round(n * eval_percent / 100)
    clamped to [1, n - 1] when eval_percent > 0 and n >= 2 (so a small dataset still validates
    on something, and never trains on nothing); 0 (no eval) otherwise. The cutoff is the
    (k+1)-th smallest hash, so `stable_int(key) < cutoff` picks exactly those k groups.
    """
    ordered = sorted(set(hashes))
    n = len(ordered)
    if eval_percent <= 0 or n < 2:
        return 0
    k = min(n - 1, max(1, (n * eval_percent + 50) // 100))
    return ordered[k]


def percent_cutoff(eval_percent: int) -> int:
    """The cutoff of plain hash bucketing (no global view of the groups): eval_percent % of the hash range."""
    return eval_percent * 2**64 // 100


def split_of(unit: Unit, cutoff: int) -> str:
    """test for the test folders; eval when the hash of `split_key(unit)` is below `cutoff`, else train.

    Units without a phone image (an unpaired layout's trainB, DSLR only) always train: eval groups
    are drawn from the phone side, so an unpaired layout never loses its DSLR domain, often one
    scene, to an eval split that could not validate anyway (validation needs pairs).
    """
    if unit.group == TEST_GROUP:
        return F.TEST
    if not unit.phone:
        return F.TRAIN
    return F.EVAL if stable_int(split_key(unit)) < cutoff else F.TRAIN

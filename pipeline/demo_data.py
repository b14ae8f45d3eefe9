"""The embedded demo dataset: real photos, a simulated phone camera, DPED and unpaired layouts.

DPED cannot be downloaded here, so the demo builds its own small stand-in from the colour
photographs that locked dependencies ship inside their wheels (scikit-image's `skimage/data`,
scikit-learn's `sklearn/datasets/images`, matplotlib's `mpl-data/sample_data`; read straight from
disk with Pillow: no fetcher, no network). The photo is the DSLR ("canon") side; the phone side is that photo passed
through `simulate_phone` (pipeline/demo_camera.py, which describes the simulation), a camera model
whose every random choice comes from one `numpy.random.Generator` seeded from `seed`, so the same
seed writes byte-identical files.

Both layouts are cut from the same pairs. Training patches use an overlapping grid (`stride`),
the way DPED cut many 100x100 patches per photo; test patches do not overlap, so every test pixel
counts once in PSNR/SSIM. Test photos are held out entirely (`TRAIN_PHOTOS`, `TEST_PHOTOS`), and
the two views of the stereo motorcycle scene stay on the same side, since they show one scene.
Beside the patches, a photo manifest (`photos.csv`: name stem, photo, scene; the image
ExampleGen's format) says which photo and scene every patch was cut from, so the ingest splits
train/eval by scene and no photo is in both.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image

from phone2dslr.pipeline.demo_camera import (DemoDataError, PhoneParams, _encode,  # noqa: F401  (re-exported)
                                             _render_phone, draw_phone_params, simulate_phone)

# Bundled photo name -> (package, file inside it). Grayscale, synthetic and microscopy images are
# left out: a phone simulation needs colour photographs of real scenes. Seven training photos in
# six scenes: with fewer, the scene the eval split holds out took half the training patches.
PHOTO_FILES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage", "data/astronaut.png"),
    "motorcycle_left": ("skimage", "data/motorcycle_left.png"),
    "motorcycle_right": ("skimage", "data/motorcycle_right.png"),
    "hubble_deep_field": ("skimage", "data/hubble_deep_field.jpg"),
    "china": ("sklearn", "datasets/images/china.jpg"),
    "flower": ("sklearn", "datasets/images/flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
    "chelsea": ("skimage", "data/chelsea.png"),
    "coffee": ("skimage", "data/coffee.png"),
    "rocket": ("skimage", "data/rocket.jpg"),
}
TRAIN_PHOTOS: tuple[str, ...] = ("astronaut", "motorcycle_left", "motorcycle_right", "hubble_deep_field",
                                 "china", "flower", "grace_hopper")
TEST_PHOTOS: tuple[str, ...] = ("chelsea", "coffee", "rocket")
# Unpaired training domains take whole scenes, so no scene (and no pair) is seen from both sides;
# each side holds a portrait and other kinds of scene, so that neither domain is one kind of
# picture a discriminator could tell apart by content instead of by camera.
UNPAIRED_A_PHOTOS: tuple[str, ...] = ("astronaut", "china", "hubble_deep_field")  # trainA: phone
UNPAIRED_B_PHOTOS: tuple[str, ...] = ("grace_hopper", "motorcycle_left", "motorcycle_right", "flower")  # trainB: DSLR

# The scene a photo shows; photos not listed are their own scene. The stereo views are one scene.
SCENES: dict[str, str] = {"motorcycle_left": "motorcycle", "motorcycle_right": "motorcycle"}

MAX_SIDE = 640  # photos larger than this are downscaled: modest full-size images, seconds to build
DSLR_SIDE = "canon"  # DPED's folder name for the DSLR side
MARKER = "DONE.json"  # written last: its presence means the dataset is complete
_OWNER = ".phone2dslr-demo"  # written first and kept: the folders beside it are ours to replace
_FORMAT = 3  # bump when the output changes for the same parameters, so `ensure` rebuilds
# The image ExampleGen's photo manifest (components/image_example_gen/splitting.py), per folder group.
MANIFEST_HEADER = ("name", "photo", "scene")
_SAVE_QUALITY = 95


@dataclass(frozen=True)
class DemoSummary:
    """What a `generate` / `ensure` call left on disk."""

    out: Path
    dped_root: Path  # data.root for layout=dped
    unpaired_root: Path  # data.root for layout=unpaired
    phone: str
    seed: int
    train_pairs: int
    test_pairs: int
    full_size_images: int
    unpaired_a: int
    unpaired_b: int
    generated: bool  # False when `ensure` found the data complete and wrote nothing
    seconds: float = 0.0

    def __str__(self) -> str:
        state = f"generated in {self.seconds:.1f} s" if self.generated else "already complete"
        return (
            f"demo data in {self.out} (seed {self.seed}, phone {self.phone}, {state})\n"
            f"  DPED layout     {self.dped_root}: {self.train_pairs} training pairs, "
            f"{self.test_pairs} test pairs, {self.full_size_images} full-size test images\n"
            f"  unpaired layout {self.unpaired_root}: trainA {self.unpaired_a}, "
            f"trainB {self.unpaired_b}, testA/testB {self.test_pairs}"
        )


def generate(
    out: str | os.PathLike,
    seed: int = 0,
    phone: str = "iphone",
    patch_size: int = 100,
    stride: int = 50,
    full_size: int = 0,
) -> DemoSummary:
    """Writes the demo dataset under `out` (replacing an earlier demo there) and says what it wrote.

    `full_size` is the longest side every photo is downscaled to before anything else (so also
    the size of the full-size test images); 0 keeps the bundled sizes, capped at `MAX_SIDE`.
    Small values with small patches make a tiny dataset for tests.
    """
    started = time.perf_counter()
    _check_params(seed, phone, patch_size, stride, full_size)
    photos = {name: load_photo(name, full_size) for name in PHOTO_FILES}
    for name, photo in photos.items():
        if min(photo.shape[:2]) < patch_size:
            raise DemoDataError(f"patch_size {patch_size} is larger than photo {name!r} "
                                f"({photo.shape[1]}x{photo.shape[0]}); lower patch_size or raise full_size")
    out = Path(out)
    _clear_previous(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / _OWNER).write_text("written by pipeline.demo_data; complete only when DONE.json exists\n")

    dirs = _folders(out, phone)
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)

    counts = dict.fromkeys(_FOLDER_COUNTS.values(), 0)
    rows: dict[str, list[tuple[str, str, str]]] = {key: [] for key in _MANIFESTS}
    drawn: dict[str, dict] = {}
    for index, (name, dslr) in enumerate(photos.items()):
        rng = np.random.default_rng([seed, index])
        params = draw_phone_params(rng)
        phone_img = _render_phone(dslr, params, rng)
        drawn[name] = dataclasses.asdict(params)
        is_test = name in TEST_PHOTOS
        grid_stride = patch_size if is_test else stride
        for k, (top, left) in enumerate(_grid(dslr.shape[:2], patch_size, grid_stride)):
            window = (slice(top, top + patch_size), slice(left, left + patch_size))
            phone_jpg = _encode(phone_img[window], quality=_SAVE_QUALITY, subsampling=0)
            dslr_jpg = _encode(dslr[window], quality=_SAVE_QUALITY, subsampling=0)
            stem = f"{name}_{k:03d}"
            named = f"{stem}.jpg"
            scene = SCENES.get(name, name)
            if is_test:
                n = counts["test_pairs"]
                (dirs["test_phone"] / f"{n}.jpg").write_bytes(phone_jpg)
                (dirs["test_dslr"] / f"{n}.jpg").write_bytes(dslr_jpg)
                (dirs["testA"] / named).write_bytes(phone_jpg)
                (dirs["testB"] / named).write_bytes(dslr_jpg)
                rows["dped_test"].append((str(n), name, scene))
                rows["unpaired_test"].append((stem, name, scene))
                counts["test_pairs"] += 1
                continue
            n = counts["train_pairs"]
            (dirs["train_phone"] / f"{n}.jpg").write_bytes(phone_jpg)
            (dirs["train_dslr"] / f"{n}.jpg").write_bytes(dslr_jpg)
            rows["dped_train"].append((str(n), name, scene))
            counts["train_pairs"] += 1
            if name in UNPAIRED_A_PHOTOS:
                (dirs["trainA"] / named).write_bytes(phone_jpg)
                counts["unpaired_a"] += 1
            elif name in UNPAIRED_B_PHOTOS:
                (dirs["trainB"] / named).write_bytes(dslr_jpg)
                counts["unpaired_b"] += 1
            if name in UNPAIRED_A_PHOTOS or name in UNPAIRED_B_PHOTOS:
                rows["unpaired_train"].append((stem, name, scene))
        if is_test:
            n = counts["full_size_images"]
            (dirs["full_size"] / f"{n}.jpg").write_bytes(_encode(phone_img, _SAVE_QUALITY, subsampling=0))
            counts["full_size_images"] += 1

    for key, path in manifest_paths(out, phone).items():
        path.write_text("".join(",".join(row) + "\n" for row in [MANIFEST_HEADER, *rows[key]]))
    marker = {**_marker_params(seed, phone, patch_size, stride, full_size), "counts": counts,
              "train_photos": list(TRAIN_PHOTOS), "test_photos": list(TEST_PHOTOS),
              "unpaired_a_photos": list(UNPAIRED_A_PHOTOS), "unpaired_b_photos": list(UNPAIRED_B_PHOTOS),
              "phone_params": drawn}
    (out / MARKER).write_text(json.dumps(marker, indent=1, sort_keys=True) + "\n")
    return _summary(out, phone, seed, counts, generated=True, seconds=time.perf_counter() - started)


def ensure(
    out: str | os.PathLike,
    seed: int = 0,
    phone: str = "iphone",
    patch_size: int = 100,
    stride: int = 50,
    full_size: int = 0,
) -> DemoSummary:
    """Generates the dataset unless `out` already holds a complete one made with these parameters."""
    out = Path(out)
    marker = _read_marker(out)
    wanted = _marker_params(seed, phone, patch_size, stride, full_size)
    if (marker is not None and all(marker.get(k) == v for k, v in wanted.items())
            and _files_match(out, phone, marker.get("counts", {}))):
        return _summary(out, phone, seed, marker["counts"], generated=False)
    return generate(out, seed=seed, phone=phone, patch_size=patch_size, stride=stride, full_size=full_size)


def load_photo(name: str, full_size: int = 0) -> np.ndarray:
    """One bundled photo as uint8 HxWx3, downscaled to `full_size` (0: `MAX_SIDE`) longest side."""
    package, inside = PHOTO_FILES[name]
    with resources.as_file(resources.files(package).joinpath(*inside.split("/"))) as path:
        with Image.open(path) as im:
            im = im.convert("RGB")
            limit = full_size or MAX_SIDE
            if max(im.size) > limit:
                scale = limit / max(im.size)
                size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
                im = im.resize(size, Image.Resampling.LANCZOS)
            return np.asarray(im).copy()


def file_digest(root: str | os.PathLike) -> dict[str, str]:
    """SHA-256 of every file under `root`, by relative path: compares two generations byte for byte."""
    root = Path(root)
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def _grid(shape: tuple[int, int], size: int, stride: int) -> list[tuple[int, int]]:
    """Top-left corners of a patch grid centred on the photo (equal margins on both sides)."""
    corners = []
    for extent in shape:
        n = (extent - size) // stride + 1
        start = (extent - (size + (n - 1) * stride)) // 2
        corners.append([start + i * stride for i in range(n)])
    return [(top, left) for top in corners[0] for left in corners[1]]


def _check_params(seed: int, phone: str, patch_size: int, stride: int, full_size: int) -> None:
    if not isinstance(seed, int) or seed < 0:
        raise DemoDataError(f"seed must be an integer >= 0, got {seed!r}")
    if (not phone or phone in (".", "..", DSLR_SIDE) or "/" in phone or "\\" in phone
            or not phone.isprintable()):
        raise DemoDataError(f"phone must be a plain folder name other than {DSLR_SIDE!r}, got {phone!r}")
    if patch_size <= 0 or stride <= 0:
        raise DemoDataError(f"patch_size and stride must be > 0, got {patch_size} and {stride}")
    if full_size < 0:
        raise DemoDataError(f"full_size must be >= 0 (0 keeps the bundled sizes), got {full_size}")


def _clear_previous(out: Path) -> None:
    """Removes an earlier demo under `out`, and refuses to touch folders it did not write."""
    ours = (out / MARKER).exists() or (out / _OWNER).exists()
    for sub in ("dped", "unpaired"):
        target = out / sub
        if not target.exists():
            continue
        if not ours and any(target.iterdir()):
            raise DemoDataError(f"{target} exists and was not written by the demo generator "
                                f"(no {_OWNER}); choose another output folder or remove it")
        shutil.rmtree(target)
    (out / MARKER).unlink(missing_ok=True)


def _marker_params(seed: int, phone: str, patch_size: int, stride: int, full_size: int) -> dict:
    return {"format": _FORMAT, "seed": seed, "phone": phone, "patch_size": patch_size,
            "stride": stride, "full_size": full_size}


def _read_marker(out: Path) -> dict | None:
    try:
        return json.loads((out / MARKER).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _folders(out: Path, phone: str) -> dict[str, Path]:
    dped = out / "dped" / phone
    unpaired = out / "unpaired"
    return {
        "train_phone": dped / "training_data" / phone,
        "train_dslr": dped / "training_data" / DSLR_SIDE,
        "test_phone": dped / "test_data" / "patches" / phone,
        "test_dslr": dped / "test_data" / "patches" / DSLR_SIDE,
        "full_size": dped / "test_data" / "full_size_test_images",
        "trainA": unpaired / "trainA",
        "trainB": unpaired / "trainB",
        "testA": unpaired / "testA",
        "testB": unpaired / "testB",
    }


_MANIFESTS = ("dped_train", "dped_test", "unpaired_train", "unpaired_test")


def manifest_paths(out: str | os.PathLike, phone: str = "iphone") -> dict[str, Path]:
    """Where the photo manifests go: beside training_data/<phone> and test_data/patches (dped), in the
    root (unpaired); the image ExampleGen looks for them there."""
    dped, unpaired = Path(out) / "dped" / phone, Path(out) / "unpaired"
    return {"dped_train": dped / "training_data" / "photos.csv", "dped_test": dped / "test_data" / "photos.csv",
            "unpaired_train": unpaired / "train_photos.csv", "unpaired_test": unpaired / "test_photos.csv"}


# Which count of the marker each folder's number of files must equal.
_FOLDER_COUNTS = {"train_phone": "train_pairs", "train_dslr": "train_pairs", "test_phone": "test_pairs",
                  "test_dslr": "test_pairs", "full_size": "full_size_images", "trainA": "unpaired_a",
                  "trainB": "unpaired_b", "testA": "test_pairs", "testB": "test_pairs"}


def _files_match(out: Path, phone: str, counts: dict) -> bool:
    """Cheap completeness check: every folder holds exactly as many files as the marker says."""
    return (all(d.is_dir() and sum(1 for _ in d.glob("*.jpg")) == counts.get(_FOLDER_COUNTS[key])
                for key, d in _folders(out, phone).items())
            and all(p.is_file() for p in manifest_paths(out, phone).values()))


def _summary(out: Path, phone: str, seed: int, counts: dict, generated: bool,
             seconds: float = 0.0) -> DemoSummary:
    return DemoSummary(out=out, dped_root=out / "dped", unpaired_root=out / "unpaired", phone=phone,
                       seed=seed, generated=generated, seconds=seconds, **counts)

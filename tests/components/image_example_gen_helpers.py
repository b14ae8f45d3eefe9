"""Small real image files for the image ExampleGen tests, written with Pillow."""
from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image

BEAM_ARGS = ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]


def pixels(seed: int, size: tuple[int, int] = (24, 24)) -> np.ndarray:
    """An RGB array where every pixel differs, so crops at different places never look alike."""
    w, h = size
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def encode(img: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    out = io.BytesIO()
    img.save(out, fmt, **kwargs)
    return out.getvalue()


def write(path: Path | str, data: bytes | Image.Image, fmt: str | None = None, **kwargs) -> Path:
    """Writes bytes, or an image in `fmt` (default from the extension)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, Image.Image):
        fmt = fmt or {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".tif": "TIFF",
                      ".tiff": "TIFF", ".webp": "WEBP"}[path.suffix.lower()]
        data = encode(data, fmt, **kwargs)
    path.write_bytes(data)
    return path


def rgb(seed: int, size: tuple[int, int] = (24, 24)) -> Image.Image:
    return Image.fromarray(pixels(seed, size), "RGB")


def dped_dirs(root: Path, phone: str = "iphone") -> dict[str, Path]:
    base = root / phone
    dirs = {"train_phone": base / "training_data" / phone, "train_dslr": base / "training_data" / "canon",
            "test_phone": base / "test_data" / "patches" / phone, "test_dslr": base / "test_data" / "patches" / "canon"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def unpaired_dirs(root: Path) -> dict[str, Path]:
    dirs = {"train_phone": root / "trainA", "train_dslr": root / "trainB",
            "test_phone": root / "testA", "test_dslr": root / "testB"}
    for d in dirs.values():
        d.mkdir(parents=True, exist_ok=True)
    return dirs


def make_dataset(root: Path, layout: str = "dped", train_pairs: int = 6, test_pairs: int = 2,
                 size: tuple[int, int] = (24, 24), same_sides: bool = False, ext: str = ".png") -> dict[str, Path]:
    """Clean pairs named 0..n-1; `same_sides` writes identical phone and DSLR images."""
    dirs = dped_dirs(root) if layout == "dped" else unpaired_dirs(root)
    for group, n in (("train", train_pairs), ("test", test_pairs)):
        for i in range(n):
            seed = i * 2 + (1000 if group == "test" else 0)
            write(dirs[f"{group}_phone"] / f"{i}{ext}", rgb(seed, size))
            write(dirs[f"{group}_dslr"] / f"{i}{ext}", rgb(seed if same_sides else seed + 1, size))
    return dirs


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def files_in(folder: str | os.PathLike) -> list[str]:
    return sorted(str(p) for p in Path(folder).rglob("*") if p.is_file())

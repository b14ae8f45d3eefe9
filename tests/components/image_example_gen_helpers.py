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


def parse_example(serialized: bytes) -> dict:
    """A serialized tf.Example as {feature key: its one value} (bytes or int)."""
    import tensorflow as tf

    from phone2dslr import features as F

    feature = tf.train.Example.FromString(serialized).features.feature
    return {k: (feature[k].int64_list.value[0] if k in F.INT_KEYS else feature[k].bytes_list.value[0])
            for k in F.ALL_KEYS}


_SINK: dict[str, list] = {}  # the in-memory runner runs in this process


def _keep(values: list, name: str) -> None:
    _SINK.setdefault(name, []).extend(values)


def run_ingest(root: Path, report_dir: Path, **kw) -> dict:
    """IngestImages + WriteReport on FnApiRunner (the executor's own transforms, no TFX artifacts).

    Returns {"examples": {split: [parsed example dicts]}, "rejects": [records], "summary": summary.json}.
    `report_dir` must lie outside `root` (inside, it would be listed as an entry beside the layout).
    """
    import json

    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from phone2dslr import features as F
    from phone2dslr.components.image_example_gen import transforms
    from phone2dslr.components.image_example_gen import report as report_lib
    from phone2dslr.components.image_example_gen.layout import IngestOptions, check_layout
    from phone2dslr.components.image_example_gen.splitting import check_manifests

    kw.setdefault("patch_size", 0)
    options = IngestOptions(input_base=str(root), **kw)
    _SINK.clear()
    with beam.Pipeline(options=PipelineOptions(BEAM_ARGS)) as p:
        out = p | transforms.IngestImages(  # pylint: disable=no-value-for-parameter
            options, check_layout(options), check_manifests(options))
        for name in (*F.SPLITS, transforms.REJECTS):
            _ = out[name] | f"Gather[{name}]" >> beam.combiners.ToList() | f"Keep[{name}]" >> beam.Map(_keep, name)
        _ = out | transforms.WriteReport(options, str(report_dir))  # pylint: disable=no-value-for-parameter

    return {"examples": {s: [parse_example(ex) for ex in _SINK.get(s, [])] for s in F.SPLITS},
            "rejects": list(_SINK.get(transforms.REJECTS, [])),
            "summary": json.loads((report_dir / report_lib.SUMMARY_JSON).read_text())}


# Display P3's primaries, adapted to D50 as ICC profiles store them (Apple's "Display P3" profile).
P3_COLORANTS = ((0.515102, 0.241182, -0.001049), (0.291965, 0.692236, 0.041882), (0.157153, 0.066582, 0.784378))
D50 = (0.964203, 1.0, 0.824905)


def icc_profile(description: str = "Display P3 test", colorants=P3_COLORANTS, gamma: float = 2.2,
                gray: bool = False) -> bytes:
    """A minimal valid ICC v2 display profile, built byte by byte (no non-sRGB profile ships with
    Pillow or this system): matrix/TRC RGB, the shape of iPhone's Display P3 profile, with the given
    D50 colorants and a pure-gamma tone curve; or, with `gray`, a gray profile with that curve."""
    import struct

    def s15(v: float) -> bytes:
        return struct.pack(">i", round(v * 65536))

    def xyz(v) -> bytes:
        return b"XYZ " + bytes(4) + b"".join(s15(c) for c in v)

    text = description.encode("ascii") + b"\0"
    desc = (b"desc" + bytes(4) + struct.pack(">I", len(text)) + text
            + struct.pack(">II", 0, 0) + struct.pack(">HB", 0, 0) + bytes(67))
    curve = b"curv" + bytes(4) + struct.pack(">IH", 1, round(gamma * 256)) + bytes(2)
    tags = [(b"desc", desc), (b"cprt", b"text" + bytes(4) + b"no copyright, test data\0"), (b"wtpt", xyz(D50))]
    if gray:
        tags.append((b"kTRC", curve))
    else:
        tags += [(b"rXYZ", xyz(colorants[0])), (b"gXYZ", xyz(colorants[1])), (b"bXYZ", xyz(colorants[2])),
                 (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, body = 128 + 4 + 12 * len(tags), b"", b""
    for sig, data in tags:
        data += bytes(-len(data) % 4)  # tags start on 4-byte boundaries
        table += sig + struct.pack(">II", offset + len(body), len(data))
        body += data
    size = offset + len(body)
    header = (struct.pack(">I", size) + b"lcms" + bytes([2, 0x10, 0, 0]) + b"mntr" + (b"GRAY" if gray else b"RGB ")
              + b"XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + b"APPL" + bytes(4 + 4 + 4 + 8) + bytes(4)
              + b"".join(s15(c) for c in D50) + b"lcms" + bytes(44))
    assert len(header) == 128
    return header + struct.pack(">I", len(tags)) + table + body


def png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG written byte by byte (Pillow writes 16 bits for gray only): values uint16 of
    shape (h, w) gray, (h, w, 2) gray+alpha, (h, w, 3) RGB or (h, w, 4) RGBA."""
    import struct
    import zlib

    values = values if values.ndim == 3 else values[..., None]
    h, w, c = values.shape
    color_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, color_type, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

"""Full-size held-out photos for the report, enhanced at full resolution by the model file that ships.

Patches (crops.py) show what the metrics measured; a reviewer also needs to see whole photos the
way a phone user will: every pixel of the photo through the shipped TFLite file, tiled exactly by
export/tiling.py (the same `phone2dslr enhance` path users run), not a resized or cropped stand-in.
Which file: the float32 variant when TFLiteExport shipped it (it is the one checked closest to the
SavedModel), else the first other shipped variant; the SavedModel only when no TFLite variant
passed, and the page says so.

Which photos: a folder of full-size held-out phone photos. DPED ships them beside its test
patches (`<root>/<phone>/test_data/full_size_test_images`, phone side only, so no DSLR there);
the demo writes the same folder. An optional folder of DSLR photos with the same file names adds
the target; it is scored only when pixel-aligned (same size). The page gets downscaled JPEGs
(quality 90, at most DISPLAY_SIDE px: the page stays a few MB) and a centre crop at full
resolution, shown ZOOM_SCALE times larger with nearest neighbour so single pixels stay visible.
"""
from __future__ import annotations

import io
import os
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf
from PIL import Image

from phone2dslr.components.run_report.page import FullPhoto
from phone2dslr.components.split_images import sample_positions
from phone2dslr.errors import one_line
from phone2dslr.export import enhance, tflite_checks, tiling
from phone2dslr.export.tflite_convert import VARIANTS

FULL_SIZE_FOLDER = "full_size_test_images"  # DPED's folder of full-size test photos (phone side)
DISPLAY_SIDE = 1024  # longest side of the JPEGs on the page
JPEG_QUALITY = 90
ZOOM_SIDE = 120  # centre crop, full-resolution pixels
ZOOM_SCALE = 3
PREFERRED_VARIANT = "float32"


@dataclass(frozen=True)
class ShippedModel:
    """The model file the photos go through and how the page names it."""

    path: str  # a .tflite file or a SavedModel folder
    label: str  # e.g. "float32.tflite (LiteRT)"
    fallback_note: str = ""  # set when no TFLite variant shipped and the SavedModel stands in


def full_size_dir(layout: str, root: str, phone: str) -> str:
    """DPED layout: `<root>/<phone>/test_data/full_size_test_images`; other layouts have none ("")."""
    return os.path.join(root, phone, "test_data", FULL_SIZE_FOLDER) if layout == "dped" else ""


def shipped_model(tflite: dict[str, Any] | None, tflite_uri: str | None, saved_model: str) -> ShippedModel:
    """The float32 TFLite file if it shipped, else another shipped variant, else the SavedModel.

    tflite: tflite_results.json as read by export/tflite_checks.read_results (None: no export ran);
    a variant ships when it is listed under "shipped" and has a "file" (relative to tflite_uri).
    """
    if tflite is not None and tflite_uri:
        shipped = [v for v in tflite.get("shipped", []) if (tflite.get("variants", {}).get(v) or {}).get("file")]
        order = [PREFERRED_VARIANT] + [v for v in VARIANTS if v != PREFERRED_VARIANT]
        for variant in [v for v in order if v in shipped] + [v for v in shipped if v not in order]:
            name = tflite["variants"][variant]["file"]
            return ShippedModel(os.path.join(tflite_uri, name), f"{name} (LiteRT)")
        why = "no TFLite variant passed its checks"
    else:
        why = "this run has no TFLite export"
    return ShippedModel(saved_model, "the SavedModel's enhance_image signature",
                        f"{why}, so the SavedModel stands in for the file that would ship")


def list_photos(folder: str, limit: int, seed: int = 0) -> list[str]:
    """Up to `limit` JPEG/PNG files of `folder` (not recursive), spread over its sorted names, seeded.

    Raises FileNotFoundError when the folder does not exist.
    """
    if not tf.io.gfile.isdir(folder):
        raise FileNotFoundError(f"no folder {folder}")
    names = sorted(n for n in tf.io.gfile.listdir(folder)
                   if n.lower().endswith(enhance.PHOTO_SUFFIXES) and not tf.io.gfile.isdir(os.path.join(folder, n)))
    return [os.path.join(folder, names[i]) for i in sample_positions(len(names), limit, seed)]


def load(model: ShippedModel, workdir: str, threads: int = 2) -> enhance.Enhancer:
    """The model as export/enhance.py's tiled Enhancer (remote files are copied into `workdir` first).

    Raises enhance.EnhanceError (or OSError) when it cannot be loaded.
    """
    return enhance.load_enhancer(_local(model.path, workdir), threads=threads)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float [H, W, 3] in [0, 1] -> uint8 [H, W, 3] (rounded, clipped)."""
    return np.clip(np.round(np.asarray(image, np.float32) * 255.0), 0, 255).astype(np.uint8)


def display_jpeg(image: np.ndarray, side: int = DISPLAY_SIDE, quality: int = JPEG_QUALITY) -> tuple[bytes, tuple]:
    """JPEG bytes of float [H, W, 3] in [0, 1], downscaled (Lanczos) to at most `side` px; and its (h, w)."""
    pil = Image.fromarray(to_uint8(image), "RGB")
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale < 1.0:
        pil = pil.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS)
    out = io.BytesIO()
    pil.save(out, format="JPEG", quality=quality)
    return out.getvalue(), (pil.height, pil.width)


def png(image: np.ndarray) -> bytes:
    """Lossless PNG bytes of float [H, W, 3] in [0, 1]."""
    out = io.BytesIO()
    Image.fromarray(to_uint8(image), "RGB").save(out, format="PNG")
    return out.getvalue()


def centre_box(height: int, width: int, side: int = ZOOM_SIDE) -> tuple[int, int, int, int]:
    """(top, left, h, w) of the centre crop of at most side x side."""
    h, w = min(height, side), min(width, side)
    return (height - h) // 2, (width - w) // 2, h, w


def make_photo(enhancer: enhance.Enhancer, path: str, dslr_path: str | None, workdir: str,
               tile: int = enhance.DEFAULT_TILE) -> FullPhoto:
    """Read (EXIF-upright), enhance at full resolution, score against a same-size DSLR photo, encode.

    Raises enhance.PhotoError for a photo that cannot be read, and the model's own errors.
    """
    phone = enhance.read_photo(_local(path, workdir)).pixels
    start = time.perf_counter()
    enhanced = enhancer(phone, tile=tile)[0]
    seconds = time.perf_counter() - start
    dslr, note = None, ""
    if dslr_path is not None:
        dslr = enhance.read_photo(_local(dslr_path, workdir)).pixels
        if dslr.shape != phone.shape:
            note = (f"DSLR photo {dslr.shape[1]}x{dslr.shape[0]} is not pixel-aligned with the phone photo "
                    f"{phone.shape[1]}x{phone.shape[0]}: no score, no crop")
    aligned = dslr is not None and dslr.shape == phone.shape
    top, left, h, w = box = centre_box(*phone.shape[:2])
    crop = (slice(top, top + h), slice(left, left + w))
    phone_jpeg, shown = display_jpeg(phone)
    return FullPhoto(
        name=os.path.basename(path), size=phone.shape[:2], display_size=shown, phone_jpeg=phone_jpeg,
        enhanced_jpeg=display_jpeg(enhanced)[0], dslr_jpeg=None if dslr is None else display_jpeg(dslr)[0],
        zoom_box=box, zoom_scale=ZOOM_SCALE, phone_zoom_png=png(phone[crop]), enhanced_zoom_png=png(enhanced[crop]),
        dslr_zoom_png=png(dslr[crop]) if aligned else None, seconds=seconds,
        psnr_phone=tflite_checks.psnr(phone[None], dslr[None]) if aligned else None,
        psnr_model=tflite_checks.psnr(enhanced[None], dslr[None]) if aligned else None, dslr_note=note)


def for_report(model: ShippedModel, photos_dir: str, dslr_dir: str, limit: int) -> tuple[list[FullPhoto], str]:
    """The photos for the page and a note on where they came from, which model ran, and what was skipped.

    Never raises for a missing folder, an unreadable photo or a model that fails on one photo:
    a report must not fail a run that already trained; the note says what happened instead.
    """
    if limit <= 0:
        return [], "full-size photos turned off (num_photos = 0)"
    if not photos_dir:
        return [], "no folder of full-size photos given (the DPED layout provides test_data/full_size_test_images)"
    try:
        paths = list_photos(photos_dir, limit)
    except (FileNotFoundError, tf.errors.OpError) as e:
        return [], f"no full-size photos: {one_line(e, with_type=False)}"
    if not paths:
        return [], f"no full-size photos: {photos_dir} holds no .jpg/.jpeg/.png file"
    dslr_names = _dslr_names(dslr_dir)
    with tempfile.TemporaryDirectory(prefix="run_report_photos_") as workdir:
        try:
            enhancer = load(model, workdir)
        except (enhance.EnhanceError, tiling.NotTileableError, OSError, tf.errors.OpError) as e:
            return [], f"no full-size photos: cannot load {model.path}: {one_line(e, with_type=False)}"
        photos, failed = [], []
        for path in paths:
            stem = os.path.splitext(os.path.basename(path))[0]
            dslr = os.path.join(dslr_dir, dslr_names[stem]) if stem in dslr_names else None
            try:
                photos.append(make_photo(enhancer, path, dslr, workdir))
            except (enhance.PhotoError, OSError, tf.errors.OpError, RuntimeError, MemoryError, ValueError) as e:
                failed.append(f"{os.path.basename(path)} ({one_line(e, limit=200)})")
    tiles = f"tiled {enhance.DEFAULT_TILE} px, {enhancer.note}" if enhancer.note else f"tiled {enhance.DEFAULT_TILE} px"
    note = (f"{len(photos)} of the full-size photos in {photos_dir}, enhanced at full resolution by {model.label} "
            f"({tiles}); shown downscaled to at most {DISPLAY_SIDE} px (JPEG quality {JPEG_QUALITY}), with a "
            f"{ZOOM_SIDE} px centre crop at full resolution shown {ZOOM_SCALE}x (nearest neighbour)")
    note += "; DSLR photos from " + dslr_dir if dslr_dir else "; no DSLR photos given for them"
    if model.fallback_note:
        note += ". " + model.fallback_note
    if failed:
        note += ". Skipped: " + "; ".join(failed)
    return photos, note


def _dslr_names(folder: str) -> dict[str, str]:
    """File stem -> file name of the JPEG/PNG files of `folder` ({} when it is empty or missing)."""
    if not folder or not tf.io.gfile.isdir(folder):
        return {}
    return {os.path.splitext(n)[0]: n for n in sorted(tf.io.gfile.listdir(folder))
            if n.lower().endswith(enhance.PHOTO_SUFFIXES)}


def _local(path: str, workdir: str) -> str:
    """`path` itself when it is on this machine, else a copy of it (file or folder) under `workdir`."""
    if "://" not in path:
        return path
    target = os.path.join(workdir, f"{len(os.listdir(workdir))}_{os.path.basename(path.rstrip('/'))}")
    if not tf.io.gfile.isdir(path):
        tf.io.gfile.copy(path, target)
        return target
    for folder, _, files in tf.io.gfile.walk(path):
        local = os.path.join(target, os.path.relpath(folder, path))
        os.makedirs(local, exist_ok=True)
        for name in files:
            tf.io.gfile.copy(os.path.join(folder, name), os.path.join(local, name))
    return target

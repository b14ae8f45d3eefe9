"""Enhance real photos with a trained model: any size, tile by tile, files in and files out.

Models (`load_enhancer`): a `.tflite` file (LiteRT), a SavedModel folder (its `enhance_image`
signature), or an official DPED TF1 checkpoint prefix (export/official_dped.py, run as Keras).
Each is tiled exactly (export/tiles.py, export/tiling.py): the receptive field is read off the
TFLite or SavedModel graph, or the Keras layer graph. Models that normalize over the image (the
official DPED weights) are streamed exactly, stage by stage: as Keras (export/streamed_norm.py) for
the checkpoint and a SavedModel that `import-dped` wrote, on LiteRT for a streamable `.tflite`
(export/streamed_tflite.py, export/enhance_tflite.py), which recomputes tile by tile instead when
its whole-image activations would exceed `stream_memory`. Another TFLite file of such a model cannot
be cut at a layer and runs on the whole image (memory grows with the photo).

A `.tflite` file runs on LiteRT alone: that path imports no TensorFlow (a test checks it), so it
also runs on the minimal runtime install (README). A `.tflite` whose input size is fixed ([1, T, T,
3]: for the GPU delegate, NNAPI, mobile-challenge models) is tiled at exactly that size
(`Enhancer.fixed`; --tile does not apply) with the overlap of its receptive field: from its graph,
else its metadata (export/tflite_metadata.py), else `overlap` (--overlap), else DEFAULT_OVERLAP.

Photos (`enhance_files`): JPEG or PNG, single files or the JPEG/PNG files of a folder (not
recursive), read and written by export/photo_files.py: any size up to --max-pixels, held as 8- or
16-bit samples and converted to float32 one tile at a time; the output keeps the input's name,
format, bit depth, alpha and EXIF (upright), in sRGB. Each output is written to a temporary file in
the output folder and renamed into place, so no partial photo is ever left under an output name. A
file that cannot be read, decoded or written is reported in one line and skipped; `Summary` counts.

Arguments (export/enhance_checks.py): a mistake raises EnhanceError with one line that says what to
pass instead, before any photo is touched and before TensorFlow loads (only a SavedModel or a
checkpoint loads it), so a mistake is reported in well under a second.
"""
from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Iterable

import numpy as np
from numpy.typing import DTypeLike
from tqdm import tqdm

from phone2dslr.errors import one_line
from phone2dslr.export import tiles
from phone2dslr.export.enhance_checks import (  # noqa: F401  (re-exported: the CLI's names)
    DEFAULT_OVERLAP, DEFAULT_TILE, PHOTO_SUFFIXES, EnhanceError, check_inputs, check_model_path, check_out_dir,
    check_tile)
from phone2dslr.export.photo_files import (  # noqa: F401  (re-exported: the run report's names)
    DEFAULT_MAX_PIXELS, DEFAULT_QUALITY, FORMATS, Photo, PhotoError, read_photo, write_photo)
from phone2dslr.export.streamed_tflite import DEFAULT_STREAM_MEMORY

if TYPE_CHECKING:  # imported on first use instead: TensorFlow takes seconds to load
    import tf_keras as keras

    from phone2dslr.export.streamed_tflite import StreamedTFLite

# A photo's reason in the summary: the message alone (the caller words the kind), bounded.
_one_line = functools.partial(one_line, with_type=False, limit=300)


@dataclass
class Enhancer:
    """A loaded model: float32 [1, H, W, 3] in [0, 1] -> enhanced [1, H, W, 3] in [0, 1], tiled."""

    kind: str
    fn: tiles.ImageFn
    radius: int | None = None  # None: not tileable, run on the whole image
    keras_model: keras.Model | None = None  # set for checkpoints: tiled in passes
    note: str = ""
    fixed: tuple[int, int] | None = None  # (rows, columns) of a model whose input size is fixed: its tile
    # Models normalizing over the image: a streamable .tflite (export/streamed_tflite.py), the dtype
    # of the whole-image activations kept between stages (float32 exact, float16 half the memory),
    # and the MiB a streamable .tflite may keep before it recomputes tile by tile instead.
    streamed: StreamedTFLite | None = None
    storage: str = "float32"
    stream_memory: float = DEFAULT_STREAM_MEMORY

    @property
    def min_tile(self) -> int | None:
        """The smallest tile side (pixels) that keeps any output: 2 * radius + 1, for the widest pass of a
        model tiled in passes; None when the model runs on whole images or at its fixed size."""
        if self.keras_model is not None:
            from phone2dslr.export import tiling

            return 2 * max(tiling.pass_radii(self.keras_model)) + 1
        if self.streamed is not None:
            return self.streamed.min_tile()
        return None if self.radius is None or self.fixed else 2 * self.radius + 1

    def tiles(self, height: int, width: int, tile: int) -> int:
        """How many tile runs one photo of this size takes."""
        if self.keras_model is not None:
            from phone2dslr.export import tiling

            return tiling.tiled_predict_count(self.keras_model, height, width, tile, self.storage)
        if self.streamed is not None:
            return self.streamed.count(height, width, tile, self.storage, self.stream_memory)
        if self.radius is None:
            return 1
        if self.fixed:
            return tiles.tile_count(height, width, self.fixed, self.radius, fixed=True)
        return tiles.tile_count(height, width, tile, self.radius)

    def __call__(self, image: np.ndarray, tile: int = DEFAULT_TILE, on_tile: tiles.OnTile = None,
                 dtype: DTypeLike = np.float32) -> np.ndarray:
        """[H, W, 3] or [1, H, W, 3], float in [0, 1] or uint8/uint16 samples -> [1, H, W, 3] of `dtype`:
        float32 clipped to [0, 1] (default), or uint8/uint16 samples (clipped, rounded).

        Samples are converted to float32 tile by tile (tiles.float_tile / to_samples), so memory is
        the input and the output plus a few tiles; a whole-image run (tile 0, or a model that cannot
        be tiled) needs float32 of the whole photo. A fixed-size model ignores `tile` (its tiles are
        its input size). Raises tiles.NotTileableError when `tile` is too small for the model (see
        `min_tile`) or the model's output is not the size of its input."""
        if self.keras_model is not None:
            from phone2dslr.export import tiling

            out = tiling.tiled_predict(self.keras_model, image, tile=tile, on_tile=on_tile, dtype=dtype,
                                       storage=self.storage)
        elif self.streamed is not None:
            out = self.streamed.run(image, tile=tile, storage=self.storage, memory_mib=self.stream_memory,
                                    on_tile=on_tile, dtype=dtype)
        elif self.fixed:
            out = tiles.tiled_apply(self.fn, image, tile=self.fixed, radius=self.radius or 0, on_tile=on_tile,
                                    dtype=dtype, fixed=True)
        elif self.radius is None:
            x = tiles.float_tile(np.asarray(image))
            out = tiles.to_samples(self.fn(x[np.newaxis] if x.ndim == 3 else x), dtype)
            if on_tile is not None:
                on_tile()
        else:
            out = tiles.tiled_apply(self.fn, image, tile=tile, radius=self.radius, on_tile=on_tile, dtype=dtype)
        return np.clip(out, 0.0, 1.0) if np.issubdtype(out.dtype, np.floating) else out


def load_enhancer(path: str, threads: int = 2, overlap: int | None = None, storage: str = "float32",
                  stream_memory: float = DEFAULT_STREAM_MEMORY) -> Enhancer:
    """A `.tflite` file, a SavedModel folder or an official DPED checkpoint prefix as an Enhancer.

    `storage` (float32 or float16) and `stream_memory` (MiB) apply to models that normalize over the
    image (see `Enhancer`).
    `overlap` (pixels, a .tflite only): how much tiles overlap, 2 x the receptive-field radius, in
    place of what the model's graph or metadata say (for models whose graph cannot be walked).
    Raises EnhanceError (one line) when `path` is not one of those (see `check_model_path`, which
    names the model to pass when the path is one level off), the model cannot be loaded, `overlap`
    is given for another kind of model, or a fixed-size model's input is too small for its overlap.
    """
    kind = check_model_path(path)
    if overlap is not None and kind != "tflite":
        raise EnhanceError(f"--overlap applies to .tflite models only; model {path} is a {kind.replace('_', ' ')}, "
                           "whose receptive field is read off the model: leave --overlap out")
    if kind == "tflite":
        from phone2dslr.export.enhance_tflite import load_tflite

        return load_tflite(path, threads, overlap, storage=storage, stream_memory=stream_memory)
    from phone2dslr.export import official_dped, tflite_convert, tiling  # TensorFlow: only for these kinds

    if kind == "saved_model":
        try:
            enhancer = tflite_convert.SavedModelEnhancer(path)
        except tflite_convert.TFLiteExportError as e:
            raise EnhanceError(str(e)) from None
        result = _with_radius(Enhancer("saved_model", enhancer), lambda: tiling.graph_radius(enhancer._fn))
        return result if result.radius is not None else _keras_passes(path, result, storage)
    try:
        model = official_dped.load_generator(path)
    except official_dped.OfficialCheckpointError as e:
        raise EnhanceError(str(e)) from None
    return Enhancer("official DPED checkpoint", tiling.keras_fn(model), keras_model=model, storage=storage,
                    note=f"instance norm: streamed exactly in {tiling.passes(model)} stages")


def _keras_passes(path: str, fallback: Enhancer, storage: str) -> Enhancer:
    """A SavedModel that normalizes over the image, reloaded as Keras to tile it in passes if it can be."""
    import tf_keras as keras

    from phone2dslr.export import official_dped, tiling

    try:
        model = keras.models.load_model(path, compile=False, custom_objects={
            "InstanceNormalization": official_dped.InstanceNormalization})
        tiling.pass_radii(model)
    except (ValueError, TypeError, KeyError, OSError, tiling.NotTileableError):
        return fallback  # not a Keras model we can cut at its normalization layers
    if not tiling.spatial_norm_layers(model):
        return fallback
    return Enhancer("saved_model (Keras)", tiling.keras_fn(model), keras_model=model, storage=storage,
                    note=f"instance norm: streamed exactly in {tiling.passes(model)} stages")


def _with_radius(enhancer: Enhancer, radius: Callable[[], int]) -> Enhancer:
    try:
        enhancer.radius = radius()
        enhancer.note = f"receptive-field radius {enhancer.radius} px"
    except tiles.NotTileableError as e:
        enhancer.note = f"whole image per photo (not tileable: {e})"
    return enhancer


def _model_errors() -> tuple[type[BaseException], ...]:
    """What a model may raise on one photo; TensorFlow's op errors once it is loaded (not for a .tflite)."""
    tf = sys.modules.get("tensorflow")
    return (RuntimeError, MemoryError, tiles.NotTileableError) + ((tf.errors.OpError,) if tf is not None else ())


@dataclass
class Summary:
    """What `enhance_files` did: the outputs written, the inputs that failed (and why), the folder
    entries skipped for their names, and the wall time."""

    out_dir: str
    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (folder entry, why it was not read)
    seconds: float = 0.0

    def __str__(self) -> str:
        total = len(self.written) + len(self.failed)
        text = f"enhanced {len(self.written)} of {total} photo(s) into {self.out_dir} in {self.seconds:.1f} s"
        extra = [f"{len(self.failed)} failed"] if self.failed else []
        kinds: dict[str, int] = {}
        for _, why in self.ignored:
            kinds[why] = kinds.get(why, 0) + 1
        extra += [f"{n} {why} ignored" for why, n in sorted(kinds.items())]
        return text + (f" ({', '.join(extra)})" if extra else "")


def collect_photos(inputs: Iterable[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """(files to enhance, ignored folder entries with the reason): files as given; of a folder, its
    regular .jpg/.jpeg/.png files. Every other entry of an input folder is listed as ignored, as
    "sub-folder(s) (not searched)", "non-JPEG/PNG file(s)" or "entries that are not regular files"
    (broken links, pipes, devices: a pipe would block the read forever)."""
    files, ignored = [], []
    for path in inputs:
        if not os.path.isdir(path):
            files.append(path)  # checked by check_inputs; unreadable: reported when processed
            continue
        for name in sorted(os.listdir(path)):
            full = os.path.join(path, name)
            if os.path.isdir(full):
                ignored.append((full, "sub-folder(s) (not searched)"))
            elif not os.path.isfile(full):
                ignored.append((full, "entries that are not regular files"))
            elif name.lower().endswith(PHOTO_SUFFIXES):
                files.append(full)
            else:
                ignored.append((full, "non-JPEG/PNG file(s)"))
    return files, ignored


def enhance_files(inputs: Iterable[str], enhancer: Enhancer, out_dir: str, tile: int = DEFAULT_TILE,
                  quality: int = DEFAULT_QUALITY, progress: bool = True,
                  report: Callable[[str], None] | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Summary:
    """Enhance every photo of `inputs` (files, or folders' JPEG/PNG files) into `out_dir`.

    Raises EnhanceError before any photo when an argument is wrong (`check_inputs`, `check_out_dir`,
    `check_tile`, quality outside 1..100, max_pixels below 0) or `out_dir` cannot be created. After
    that nothing raises for one photo: a photo that cannot be read, decoded (or is above
    `max_pixels`, 0: no limit), enhanced or written (see `write_photo`: no partial file is left) goes
    into `Summary.failed`, `report` gets one line naming it, and the next photo goes on. A photo
    written with a caveat (`Photo.notes`) gets one `note:` line per caveat.
    """
    inputs = list(inputs)
    model_errors = _model_errors()
    if not 1 <= quality <= 100:
        raise EnhanceError(f"JPEG quality must be 1..100, got {quality}")
    if max_pixels < 0:
        raise EnhanceError(f"max_pixels {max_pixels} is negative; pass a pixel count, or 0 for no limit")
    check_inputs(inputs)
    check_out_dir(out_dir, inputs)
    check_tile(enhancer, tile)
    start = time.perf_counter()
    files, ignored = collect_photos(inputs)
    summary = Summary(out_dir, ignored=ignored)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise EnhanceError(f"cannot create output folder {out_dir}: {e.strerror or _one_line(e)}") from None
    used: set[str] = set()
    for path in tqdm(files, desc="photos", unit="photo", disable=not progress):
        try:
            photo = read_photo(path, max_pixels)
            target = _output_path(path, out_dir, photo.format, used)
            height, width = photo.rgb.shape[:2]
            with tqdm(total=enhancer.tiles(height, width, tile), desc=os.path.basename(path), unit="tile",
                      leave=False, disable=not progress) as bar:
                # The output replaces the input's samples, which are freed before the output is encoded.
                photo.rgb = enhancer(photo.rgb, tile=tile, on_tile=lambda: bar.update(1), dtype=photo.rgb.dtype)[0]
            write_photo(target, photo, quality)
            summary.written.append(target)
            for note in photo.notes if report is not None else ():
                report(f"note: {path}: {note}")
        except (PhotoError, OSError) as e:
            reason = str(e) if isinstance(e, PhotoError) else f"cannot read: {e.strerror or _one_line(e)}"
            summary.failed.append((path, reason))
            if report is not None:
                report(f"skipped {path}: {reason}")
        except model_errors as e:
            reason = f"the model failed on it: {type(e).__name__}: {_one_line(e)}"
            summary.failed.append((path, reason))
            if report is not None:
                report(f"skipped {path}: {reason}")
    summary.seconds = time.perf_counter() - start
    return summary


def _output_path(path: str, out_dir: str, fmt: str, used: set[str]) -> str:
    stem, suffix = os.path.splitext(os.path.basename(path))
    if (suffix.lower() == ".png") != (fmt == "PNG") or suffix.lower() not in PHOTO_SUFFIXES:
        suffix = FORMATS[fmt]  # the name's suffix follows what is written
    target, n = os.path.join(out_dir, stem + suffix), 1
    while target in used:  # two inputs with one name (from different folders)
        target, n = os.path.join(out_dir, f"{stem}_{n}{suffix}"), n + 1
    if os.path.exists(target) and os.path.samefile(target, path):
        raise PhotoError("output would overwrite the input; choose another output folder")
    used.add(target)
    return target


__all__ = ["Enhancer", "EnhanceError", "Photo", "PhotoError", "Summary", "load_enhancer", "read_photo",
           "write_photo", "collect_photos", "enhance_files", "check_model_path", "check_inputs",
           "check_out_dir", "check_tile", "DEFAULT_TILE", "DEFAULT_OVERLAP", "DEFAULT_QUALITY", "DEFAULT_MAX_PIXELS"]

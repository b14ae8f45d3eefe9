"""Enhance real photos with a trained model: any size, tile by tile, files in and files out.

Models (`load_enhancer`): a `.tflite` file (LiteRT), a SavedModel folder (its `enhance_image`
signature), or an official DPED TF1 checkpoint prefix (export/official_dped.py, run as Keras).
Each is tiled exactly (export/tiling.py): the receptive field is read off the TFLite or SavedModel
graph, or the Keras layer graph. Models that normalize over the image (the official DPED weights)
are tiled exactly in passes when they can be run as Keras: the checkpoint, and a SavedModel that
`import-dped` wrote (reloaded with its InstanceNormalization layer). A TFLite file of such a model
cannot be cut at a layer and runs on the whole image (memory grows with the photo).

Photos (`enhance_files`): JPEG or PNG, single files or the JPEG/PNG files of a folder (not
recursive). EXIF orientation is applied to the pixels, so the output is stored upright and its
EXIF (kept, with the ICC profile) loses the Orientation tag. Outputs keep the input's name and
format in the output folder (JPEG at the given quality). Each output is written to a temporary
file in the output folder and renamed into place, so a full disk, a folder that turns read-only
or an interrupt never leaves a partial photo under an output name. A file that cannot be read,
decoded or written is reported in one line and skipped; the rest go on; `Summary` counts both.

Arguments (export/enhance_checks.py: `check_inputs`, `check_out_dir`, `check_model_path`,
`check_tile`): a mistake raises EnhanceError with one line that says what to pass instead, before
any photo is touched. This module imports TensorFlow on first use of a model, so a mistake is
reported in well under a second.
"""
from __future__ import annotations

import errno
import functools
import os
import secrets
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable

import numpy as np
from PIL import ExifTags, Image, ImageOps
from tqdm import tqdm

from phone2dslr.errors import one_line
from phone2dslr.export.enhance_checks import (  # noqa: F401  (re-exported: the CLI's names)
    DEFAULT_TILE, PHOTO_SUFFIXES, EnhanceError, check_inputs, check_model_path, check_out_dir, check_tile)

if TYPE_CHECKING:  # imported on first use instead: TensorFlow takes seconds to load
    import tf_keras as keras

    from phone2dslr.export import tiling

# A photo's reason in the summary: the message alone (the caller words the kind), bounded.
_one_line = functools.partial(one_line, with_type=False, limit=300)

FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}  # MPO: multi-picture JPEG from some phones
DEFAULT_QUALITY = 95


class PhotoError(ValueError):
    """One photo cannot be read, decoded or written (one-line message)."""




@dataclass
class Enhancer:
    """A loaded model: float32 [1, H, W, 3] in [0, 1] -> enhanced [1, H, W, 3] in [0, 1], tiled."""

    kind: str
    fn: tiling.ImageFn
    radius: int | None = None  # None: not tileable, run on the whole image
    keras_model: keras.Model | None = None  # set for checkpoints: tiled in passes
    note: str = ""

    @property
    def min_tile(self) -> int | None:
        """The smallest tile side (pixels) that keeps any output: 2 * radius + 1, for the widest pass of a
        model tiled in passes; None when the model runs on whole images (no tile is too small)."""
        from phone2dslr.export import tiling

        if self.keras_model is not None:
            return 2 * max(tiling.pass_radii(self.keras_model)) + 1
        return None if self.radius is None else 2 * self.radius + 1

    def tiles(self, height: int, width: int, tile: int) -> int:
        """How many tile runs one photo of this size takes."""
        from phone2dslr.export import tiling

        if self.keras_model is not None:
            return tiling.tiled_predict_count(self.keras_model, height, width, tile)
        if self.radius is None:
            return 1
        return tiling.tile_count(height, width, tile, self.radius)

    def __call__(self, image: np.ndarray, tile: int = DEFAULT_TILE, on_tile: tiling.OnTile = None) -> np.ndarray:
        """float32 [H, W, 3] or [1, H, W, 3] in [0, 1] -> float32 [1, H, W, 3] clipped to [0, 1].

        Raises tiling.NotTileableError when `tile` is too small for the model (see `min_tile`)."""
        from phone2dslr.export import tiling

        if self.keras_model is not None:
            out = tiling.tiled_predict(self.keras_model, image, tile=tile, on_tile=on_tile)
        elif self.radius is None:
            out = self.fn(np.asarray(image, np.float32)[np.newaxis] if np.ndim(image) == 3 else image)
            if on_tile is not None:
                on_tile()
        else:
            out = tiling.tiled_apply(self.fn, image, tile=tile, radius=self.radius, on_tile=on_tile)
        return np.clip(out, 0.0, 1.0)


def load_enhancer(path: str, threads: int = 2) -> Enhancer:
    """A `.tflite` file, a SavedModel folder or an official DPED checkpoint prefix as an Enhancer.

    Raises EnhanceError (one line) when `path` is not one of those (see `check_model_path`, which
    names the model to pass when the path is one level off) or the model cannot be loaded.
    """
    from phone2dslr.export import official_dped, tflite_convert, tflite_runtime, tiling

    kind = check_model_path(path)
    if kind == "tflite":
        try:
            runner = tflite_runtime.TFLiteRunner(path, threads=threads)
        except (ValueError, RuntimeError) as e:  # a damaged flatbuffer; TFLiteExportError: not an image model
            raise EnhanceError(f"model {path} cannot be loaded: {_one_line(e)}") from None
        return _with_radius(Enhancer("tflite", runner), lambda: tiling.tflite_radius(path))
    if kind == "saved_model":
        try:
            enhancer = tflite_convert.SavedModelEnhancer(path)
        except tflite_convert.TFLiteExportError as e:
            raise EnhanceError(str(e)) from None
        result = _with_radius(Enhancer("saved_model", enhancer), lambda: tiling.graph_radius(enhancer._fn))
        return result if result.radius is not None else _keras_passes(path, result)
    try:
        model = official_dped.load_generator(path)
    except official_dped.OfficialCheckpointError as e:
        raise EnhanceError(str(e)) from None
    return Enhancer("official DPED checkpoint", tiling.keras_fn(model), keras_model=model,
                    note=f"instance norm: exact tiles in {tiling.passes(model)} passes")


def _keras_passes(path: str, fallback: Enhancer) -> Enhancer:
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
    return Enhancer("saved_model (Keras)", tiling.keras_fn(model), keras_model=model,
                    note=f"instance norm: exact tiles in {tiling.passes(model)} passes")


def _with_radius(enhancer: Enhancer, radius: Callable[[], int]) -> Enhancer:
    from phone2dslr.export import tiling

    try:
        enhancer.radius = radius()
        enhancer.note = f"receptive-field radius {enhancer.radius} px"
    except tiling.NotTileableError as e:
        enhancer.note = f"whole image per photo (not tileable: {e})"
    return enhancer


# ---------------------------------------------------------------------------------------------
# Photos in and out.

@dataclass
class Photo:
    pixels: np.ndarray  # float32 [H, W, 3] in [0, 1], upright
    format: str  # "JPEG" or "PNG"
    exif: bytes | None = None  # without Orientation
    icc_profile: bytes | None = None


def read_photo(path: str) -> Photo:
    """Decode a JPEG/PNG, apply its EXIF orientation; PhotoError if it is not a readable JPEG/PNG."""
    try:
        with Image.open(path) as im:
            if im.format not in FORMATS:
                raise PhotoError(f"{im.format or 'unknown'} image, not JPEG or PNG")
            fmt = "PNG" if im.format == "PNG" else "JPEG"
            icc = im.info.get("icc_profile")
            im.load()
            upright = ImageOps.exif_transpose(im)
    except PhotoError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise PhotoError(f"cannot read: {e.strerror}") from None
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise PhotoError(f"cannot decode: {_one_line(e)}") from None
    exif = upright.getexif()
    exif.pop(ExifTags.Base.Orientation, None)
    if upright.mode not in ("RGB", "RGBA"):  # a CMYK or grey profile would mislabel the RGB output
        icc = None
    if upright.mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit grey PNG
        grey = np.asarray(upright, np.float32) / 65535.0
        pixels = np.repeat(np.clip(grey, 0, 1)[..., np.newaxis], 3, axis=-1)
    else:
        pixels = np.asarray(upright.convert("RGB"), np.float32) / 255.0
    return Photo(pixels, fmt, exif.tobytes() if len(exif) else None, icc)


def write_photo(path: str, pixels: np.ndarray, photo: Photo, quality: int = DEFAULT_QUALITY) -> None:
    """Write float [H, W, 3] in [0, 1] to `path` in the photo's format, with its EXIF and ICC profile.

    Atomic: the bytes go to a new hidden temporary file in `path`'s folder (so the rename stays on one
    file system), are flushed to the disk, and the file is renamed over `path`. On any failure (a
    full disk, a folder turned read-only, a directory of that name, an interrupt) the temporary is
    removed, so `path` is either the complete new photo or as it was. Raises PhotoError (one line
    naming `path`) for an OSError or ValueError.
    """
    image = Image.fromarray(np.round(np.clip(pixels, 0.0, 1.0) * 255.0).astype(np.uint8), "RGB")
    options: dict = {"exif": photo.exif} if photo.exif else {}
    if photo.icc_profile:
        options["icc_profile"] = photo.icc_profile
    if photo.format == "JPEG":
        options["quality"] = int(quality)
    folder, name = os.path.split(path)
    temporary = None
    try:
        temporary, handle = _new_temporary(folder or ".", name)
        with handle:
            image.save(handle, format=photo.format, **options)
            handle.flush()
            os.fsync(handle.fileno())  # a crash after the rename must not leave an empty photo behind
        os.replace(temporary, path)
        temporary = None
    except (OSError, ValueError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
        raise PhotoError(f"cannot write {path}: {reason}") from None
    finally:  # also on KeyboardInterrupt: no temporary is left behind
        if temporary is not None:
            try:
                os.remove(temporary)
            except OSError:
                pass  # the folder is gone or unwritable: nothing was left in it either


def _new_temporary(folder: str, name: str) -> tuple[str, BinaryIO]:
    """A new, empty, hidden file `.<name>.<random>.tmp` in `folder`, open for writing.

    Created exclusively (never another run's temporary, never a directory of that name) with mode
    0666 less the umask, which the final photo keeps; tempfile's 0600 would hide it from others.
    """
    for _ in range(100):
        temporary = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        except FileExistsError:
            continue
        return temporary, os.fdopen(descriptor, "wb")
    raise FileExistsError(errno.EEXIST, "no free temporary file name", folder)


@dataclass
class Summary:
    """What `enhance_files` did: the outputs written, the inputs that failed (and why), the folder
    entries skipped for their names, and the wall time."""

    out_dir: str
    written: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    ignored: list[str] = field(default_factory=list)  # folder entries that are not .jpg/.jpeg/.png
    seconds: float = 0.0

    def __str__(self) -> str:
        total = len(self.written) + len(self.failed)
        text = f"enhanced {len(self.written)} of {total} photo(s) into {self.out_dir} in {self.seconds:.1f} s"
        extra = [f"{len(self.failed)} failed"] if self.failed else []
        if self.ignored:
            extra.append(f"{len(self.ignored)} non-JPEG/PNG file(s) ignored")
        return text + (f" ({', '.join(extra)})" if extra else "")


def collect_photos(inputs: Iterable[str]) -> tuple[list[str], list[str]]:
    """(files to enhance, ignored folder entries): files as given; folders' .jpg/.jpeg/.png files."""
    files, ignored = [], []
    for path in inputs:
        if os.path.isdir(path):
            for name in sorted(os.listdir(path)):
                full = os.path.join(path, name)
                if os.path.isfile(full):
                    (files if name.lower().endswith(PHOTO_SUFFIXES) else ignored).append(full)
        else:
            files.append(path)  # unreadable: reported when processed
    return files, ignored


def enhance_files(inputs: Iterable[str], enhancer: Enhancer, out_dir: str, tile: int = DEFAULT_TILE,
                  quality: int = DEFAULT_QUALITY, progress: bool = True,
                  report: Callable[[str], None] | None = None) -> Summary:
    """Enhance every photo of `inputs` (files, or folders' JPEG/PNG files) into `out_dir`.

    Raises EnhanceError before any photo when an argument is wrong (`check_inputs`, `check_out_dir`,
    `check_tile`, quality outside 1..100) or `out_dir` cannot be created. After that nothing raises
    for one photo: a photo that cannot be read, decoded, enhanced or written (see `write_photo`: no
    partial file is left) goes into `Summary.failed`, `report` gets one line naming it, and the next
    photo goes on.
    """
    import tensorflow as tf  # loaded already with the model

    from phone2dslr.export import tiling

    inputs = list(inputs)
    if not 1 <= quality <= 100:
        raise EnhanceError(f"JPEG quality must be 1..100, got {quality}")
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
            photo = read_photo(path)
            target = _output_path(path, out_dir, photo.format, used)
            height, width = photo.pixels.shape[:2]
            with tqdm(total=enhancer.tiles(height, width, tile), desc=os.path.basename(path), unit="tile",
                      leave=False, disable=not progress) as bar:
                out = enhancer(photo.pixels, tile=tile, on_tile=lambda: bar.update(1))
            write_photo(target, out[0], photo, quality)
            summary.written.append(target)
        except (PhotoError, OSError) as e:
            reason = str(e) if isinstance(e, PhotoError) else f"cannot read: {e.strerror or _one_line(e)}"
            summary.failed.append((path, reason))
            if report is not None:
                report(f"skipped {path}: {reason}")
        except (tf.errors.OpError, RuntimeError, MemoryError, tiling.NotTileableError) as e:
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
           "check_out_dir", "check_tile", "DEFAULT_TILE", "DEFAULT_QUALITY"]

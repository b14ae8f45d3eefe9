"""Photo files in and out of `phone2dslr enhance`: what is read, what is kept, how it is written.

Read (`read_photo`): a JPEG or PNG of any size up to `max_pixels` (enhance --max-pixels), held as
its own samples, never as float: uint8, or uint16 for a 16-bit PNG (Pillow reads those as 8-bit,
so pypng decodes them). EXIF orientation is applied as a numpy view (no copy); the Orientation tag
is dropped from the EXIF, the rest kept. What the model sees is sRGB RGB:

- alpha (RGBA, grey + alpha, a palette or a PNG with transparency) is split off and passed through
  unchanged; the colour under transparent pixels is enhanced as it is (no compositing);
- grey (1-bit to 16-bit) is repeated into R, G and B, and the output is RGB of the same bit depth;
  a grey ICC profile is not used (grey values are taken as sRGB) and not written;
- an embedded RGB ICC profile that is not sRGB (its description does not name sRGB: Display P3,
  Adobe RGB, ProPhoto) is converted to sRGB with LittleCMS (relative colorimetric: colours outside
  sRGB are clipped), and the output is sRGB with LittleCMS's sRGB profile embedded. LittleCMS in
  Pillow converts 8-bit RGB only: a 16-bit photo with such a profile is enhanced unconverted and
  keeps its profile, and `Photo.notes` says so. An sRGB profile is kept as it is;
- CMYK JPEGs are converted by Pillow's formula (their CMYK profile is not used) and written RGB.

Written (`write_photo`): the input's format (JPEG at the given quality), bit depth (8-bit, or
16-bit PNG through pypng) and alpha, with the EXIF and the ICC profile above. Atomic: a hidden
temporary file beside the output, flushed, then renamed over it.

Memory: a photo is read in strips into its samples (3 bytes a pixel in 8-bit RGB, 6 in 16-bit)
while Pillow holds the decoded image (4 bytes a pixel); enhancing holds input and output samples
plus a few float32 tiles (export/tiling.py); writing holds the output and Pillow's copy of it.

Helpers: export/photo.py (`Photo`, `PhotoError`), export/photo_color.py (the ICC profile and the
conversion to sRGB), export/photo_png16.py (16-bit PNG through pypng).
"""
from __future__ import annotations

import contextlib
import errno
import os
import secrets
import zlib
from typing import BinaryIO, Iterator

import numpy as np
import png  # pypng (export/photo_png16.py): its errors are a photo's decode or write failures
from PIL import ExifTags, Image, ImageCms

from phone2dslr.export.photo import Photo, PhotoError, _one_line
from phone2dslr.export.photo_color import _to_srgb
from phone2dslr.export.photo_png16 import _decode_png16, _png16_exif, _png_bit_depth, _write_png16

FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}  # MPO: multi-picture JPEG from some phones
DEFAULT_QUALITY = 95
DEFAULT_MAX_PIXELS = 250_000_000  # enhance --max-pixels: above the 200 MP phone sensors; 0 is no limit
_STRIP_BYTES = 1 << 24  # Pillow -> numpy in strips of about this many bytes: no second full copy


def read_photo(path: str, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
    """Decode a JPEG/PNG as described in the module docstring.

    max_pixels: the largest width x height accepted (0: no limit). Pillow's own ceiling
    (Image.MAX_IMAGE_PIXELS: a warning above 89 MP, DecompressionBombError above twice that, at open
    and again at each crop) is off for the read and restored after; this check on the header's size
    takes its place, before any pixel is decoded. Raises PhotoError (one line) for a file that cannot
    be read, is not a JPEG/PNG, is above `max_pixels` (naming --max-pixels and the size), cannot be
    decoded, or does not fit in memory.
    """
    try:
        with _pillow_ceiling_off(), Image.open(path) as im:
            if im.format not in FORMATS:
                raise PhotoError(f"{im.format or 'unknown'} image, not JPEG or PNG")
            width, height = im.size
            if max_pixels and width * height > max_pixels:
                raise PhotoError(f"{width} x {height} = {width * height} pixels ({width * height / 1e6:.4g} MP) is "
                                 f"above --max-pixels {max_pixels}; pass --max-pixels {width * height} or more "
                                 f"(0: no limit) if the machine has the memory")
            fmt = "PNG" if im.format == "PNG" else "JPEG"
            deep = fmt == "PNG" and _png_bit_depth(path) == 16
            exif = _png16_exif(path, im) if deep else im.getexif()
            orientation = exif.pop(ExifTags.Base.Orientation, 1)
            photo = _decode_png16(path, im.info.get("icc_profile")) if deep else _decode_pillow(im)
            photo.format, photo.exif = fmt, exif.tobytes() if len(exif) else None
    except PhotoError:
        raise
    except (FileNotFoundError, PermissionError, IsADirectoryError) as e:
        raise PhotoError(f"cannot read: {e.strerror}") from None
    except MemoryError:
        raise PhotoError("cannot decode: not enough memory for it; lower --max-pixels to skip such photos, "
                         "or free memory") from None
    except (OSError, ValueError, SyntaxError, EOFError, zlib.error, png.Error, ImageCms.PyCMSError) as e:
        raise PhotoError(f"cannot decode: {_one_line(e)}") from None
    turn = _ORIENTATIONS.get(orientation)
    if turn is not None:  # views: the rotated photo costs no copy; tiles are copied as they are read
        photo.rgb = turn(photo.rgb)
        photo.alpha = None if photo.alpha is None else turn(photo.alpha)
    return photo


def write_photo(path: str, photo: Photo, quality: int = DEFAULT_QUALITY) -> None:
    """Write `photo` (its rgb, alpha, EXIF and ICC profile) to `path` in its format and bit depth.

    8-bit: Pillow (JPEG at `quality`, 1..100, or PNG; RGBA when there is alpha). 16-bit: PNG through
    pypng, with the iCCP and eXIf chunks added before the image data. Atomic: the bytes go to a new
    hidden temporary file in `path`'s folder (so the rename stays on one file system), are flushed to
    the disk, and the file is renamed over `path`. On any failure (a full disk, a folder turned
    read-only, a directory of that name, an interrupt) the temporary is removed, so `path` is either
    the complete new photo or as it was. Raises PhotoError (one line naming `path`).
    """
    folder, name = os.path.split(path)
    temporary = None
    try:
        temporary, handle = _new_temporary(folder or ".", name)
        with handle:
            if photo.bits == 16:
                _write_png16(handle, photo)
            else:
                _write_pillow(handle, photo, quality)
            handle.flush()
            os.fsync(handle.fileno())  # a crash after the rename must not leave an empty photo behind
        os.replace(temporary, path)
        temporary = None
    except MemoryError:
        raise PhotoError(f"cannot write {path}: not enough memory") from None
    except (OSError, ValueError, png.Error) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else _one_line(e)
        raise PhotoError(f"cannot write {path}: {reason}") from None
    finally:  # also on KeyboardInterrupt: no temporary is left behind
        if temporary is not None:
            try:
                os.remove(temporary)
            except OSError:
                pass  # the folder is gone or unwritable: nothing was left in it either


# ---------------------------------------------------------------------------------------------
# Decoding.

# EXIF orientation -> the numpy view that makes the stored pixels upright (as PIL.ImageOps.exif_transpose).
_ORIENTATIONS = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: np.rot90(a, -1),
    7: lambda a: a[::-1, ::-1].swapaxes(0, 1),
    8: lambda a: np.rot90(a, 1),
}

_GREY_MODES = ("1", "L", "LA")  # as Pillow decodes 8-bit (or fewer) JPEG/PNG; 16-bit goes to pypng


@contextlib.contextmanager
def _pillow_ceiling_off() -> Iterator[None]:
    """Pillow's decompression-bomb ceiling off (and with it its warning) for the block, restored after:
    `read_photo` checks the size itself against --max-pixels, with a message that names it. Process-wide
    while it lasts, as Pillow's setting is; photos are read one at a time."""
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _decode_pillow(im: Image.Image) -> Photo:
    """The 8-bit (or fewer) samples of a Pillow image, strip by strip, converted to sRGB (format and
    EXIF left to the caller)."""
    grey = im.mode in _GREY_MODES
    has_alpha = im.has_transparency_data
    target = ("LA" if has_alpha else "L") if grey else ("RGBA" if has_alpha else "RGB")
    transform, icc = None, im.info.get("icc_profile")
    if icc and not grey and im.mode != "CMYK":
        transform, icc = _to_srgb(icc)
    else:
        icc = None  # a grey or CMYK profile would mislabel the RGB output
    width, height = im.size
    colour = np.empty((height, width) if grey else (height, width, 3), np.uint8)
    alpha = np.empty((height, width), np.uint8) if has_alpha else None
    step = max(1, _STRIP_BYTES // (4 * width))
    im.load()
    for top in range(0, height, step):
        rows = slice(top, min(height, top + step))
        strip = im.crop((0, rows.start, width, rows.stop))
        if strip.mode != target:
            strip = strip.convert(target)  # a palette, 1-bit, CMYK, or alpha from a tRNS chunk
        samples = np.asarray(strip)
        if alpha is not None:
            alpha[rows] = samples[..., -1]
            samples = samples[..., 0] if grey else np.ascontiguousarray(samples[..., :3])
        if transform is not None:
            samples = np.asarray(ImageCms.applyTransform(Image.fromarray(samples), transform))
        colour[rows] = samples
    rgb = np.broadcast_to(colour[..., np.newaxis], colour.shape + (3,)) if grey else colour
    return Photo(rgb, "PNG", alpha=alpha, icc_profile=icc)


# ---------------------------------------------------------------------------------------------
# Encoding.

def _write_pillow(handle: BinaryIO, photo: Photo, quality: int) -> None:
    image = Image.fromarray(np.ascontiguousarray(photo.rgb))
    if photo.alpha is not None:
        image.putalpha(Image.fromarray(np.ascontiguousarray(photo.alpha)))
    options: dict = {"exif": photo.exif} if photo.exif else {}
    if photo.icc_profile:
        options["icc_profile"] = photo.icc_profile
    if photo.format == "JPEG":
        options["quality"] = int(quality)
    image.save(handle, format=photo.format, **options)


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

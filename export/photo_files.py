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
"""
from __future__ import annotations

import contextlib
import errno
import functools
import io
import os
import secrets
import zlib
from dataclasses import dataclass, field
from typing import BinaryIO, Iterator

import numpy as np
import png  # pypng: Pillow reads 16-bit RGB(A) PNG as 8-bit and cannot write it
from PIL import ExifTags, Image, ImageCms

from phone2dslr.errors import one_line

# A photo's reason in the summary: the message alone (the caller words the kind), bounded.
_one_line = functools.partial(one_line, with_type=False, limit=300)

FORMATS = {"JPEG": ".jpg", "MPO": ".jpg", "PNG": ".png"}  # MPO: multi-picture JPEG from some phones
DEFAULT_QUALITY = 95
DEFAULT_MAX_PIXELS = 250_000_000  # enhance --max-pixels: above the 200 MP phone sensors; 0 is no limit
_STRIP_BYTES = 1 << 24  # Pillow -> numpy in strips of about this many bytes: no second full copy


class PhotoError(ValueError):
    """One photo cannot be read, decoded or written (one-line message)."""


@dataclass
class Photo:
    """A decoded photo, upright, as the samples that are enhanced and written back.

    rgb: uint8 or uint16 [H, W, 3], sRGB unless `notes` says otherwise; may be a read-only view
    (a rotation, or grey repeated into three channels). alpha: the same dtype [H, W], or None.
    """

    rgb: np.ndarray
    format: str  # "JPEG" or "PNG"
    alpha: np.ndarray | None = None
    exif: bytes | None = None  # without Orientation
    icc_profile: bytes | None = None  # what the output embeds (the input's, or sRGB after a conversion)
    notes: list[str] = field(default_factory=list)  # one line each: what could not be kept as documented

    @property
    def bits(self) -> int:
        """Bits per sample: 8 or 16."""
        return 8 * self.rgb.dtype.itemsize

    @property
    def pixels(self) -> np.ndarray:
        """float32 [H, W, 3] in [0, 1]: a float copy of the whole photo (12 bytes a pixel; for small
        photos, e.g. the run report; `enhance` converts tile by tile instead)."""
        return self.rgb.astype(np.float32) / float(np.iinfo(self.rgb.dtype).max)


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


def _png_bit_depth(path: str) -> int:
    """The bit depth in a PNG's IHDR (signature, IHDR length and tag, width, height, then depth)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise PhotoError("cannot decode: no PNG header")
    return head[24]


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


def _decode_png16(path: str, icc: bytes | None) -> Photo:
    """A 16-bit PNG's samples through pypng (Pillow would drop them to 8 bits), with the profile to
    write (`icc` kept for RGB, even when not sRGB: no conversion, a note instead)."""
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        planes, grey = info["planes"], info["greyscale"]
        samples = np.empty((height, width * planes), np.uint16)
        for y, row in enumerate(rows):
            samples[y] = row
    samples = samples.reshape(height, width, planes)
    colour = samples[..., 0] if grey else samples[..., :3]
    alpha = None
    if info["alpha"]:
        alpha = samples[..., -1]
    elif "transparent" in info:  # a tRNS chunk: one colour is fully transparent
        key = np.asarray(info["transparent"], np.uint16)
        match = colour == key[0] if grey else np.all(colour == key, axis=-1)
        alpha = np.where(match, 0, 65535).astype(np.uint16)
    rgb = np.broadcast_to(colour[..., np.newaxis], colour.shape + (3,)) if grey else colour
    photo = Photo(rgb, "PNG", alpha=alpha)
    if icc and not grey:  # a grey profile would mislabel the RGB output
        other, photo.icc_profile = _other_rgb_profile(icc)
        if other is not None:  # its numbers stay in that space: the tag stays honest
            name = ImageCms.getProfileDescription(other).strip()
            photo.notes.append(f"16-bit with the ICC profile {name!r}, which is not sRGB: enhanced without "
                               "colour conversion (LittleCMS in Pillow converts 8-bit only), profile kept")
    return photo


def _png16_exif(path: str, im: Image.Image) -> Image.Exif:
    """A 16-bit PNG's EXIF without Pillow decoding its pixels (its getexif() does when the eXIf chunk
    follows the image data): from the chunks before the data, else a scan of the chunks after it."""
    exif = Image.Exif()
    data = im.info.get("exif")
    if data is None:
        with open(path, "rb") as f:
            data = next((body for tag, body in png.Reader(file=f).chunks() if tag == b"eXIf"), None)
    if data:
        exif.load(data)
    return exif


@functools.lru_cache(maxsize=1)
def _srgb() -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))


def _other_rgb_profile(icc: bytes) -> tuple[ImageCms.ImageCmsProfile | None, bytes | None]:
    """(the profile when it is an RGB profile that is not sRGB in effect, else None; the profile
    bytes to keep).

    sRGB is told by what the profile does, as at ingestion (components/image_example_gen/
    colour.py): converting a 16-level RGB cube to sRGB moves no value by more than one level.
    Its description is no evidence ("sRGB linear" is not sRGB). One for another colour space
    (grey, CMYK: a mislabelled file) is dropped. Raises PhotoError when LittleCMS cannot read or
    convert from it: the photo's colours are unknown, and ingestion sets such a file aside too."""
    try:
        profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        if profile.profile.xcolor_space.strip() != "RGB":
            return None, None
        levels = np.arange(0, 256, 17, dtype=np.uint8)
        cube = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(64, 64, 3)
        moved = np.asarray(ImageCms.profileToProfile(Image.fromarray(cube, "RGB"), profile, _srgb()),
                           dtype=np.int16) - cube
    except (OSError, ImageCms.PyCMSError, ValueError) as e:
        raise PhotoError(f"its embedded ICC colour profile cannot be read or converted to sRGB "
                         f"({_one_line(e)}), so its colours are unknown") from None
    return (None if np.abs(moved).max() <= 1 else profile), icc


def _to_srgb(icc: bytes) -> tuple[ImageCms.ImageCmsTransform | None, bytes | None]:
    """(8-bit RGB -> sRGB transform, or None when none is needed; the profile the output embeds):
    an RGB profile other than sRGB is converted from, and the output tagged sRGB."""
    profile, keep = _other_rgb_profile(icc)
    if profile is None:
        return None, keep
    transform = ImageCms.buildTransform(profile, _srgb(), "RGB", "RGB",
                                        renderingIntent=ImageCms.Intent.RELATIVE_COLORIMETRIC)
    return transform, _srgb().tobytes()


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


def _write_png16(handle: BinaryIO, photo: Photo) -> None:
    """16-bit RGB(A) PNG, row by row (pypng packs nothing: rows go in as big-endian bytes)."""
    height, width = photo.rgb.shape[:2]
    planes = 3 if photo.alpha is None else 4
    chunks = []
    if photo.icc_profile:  # name, NUL, compression method 0 (zlib), the compressed profile
        chunks.append((b"iCCP", b"ICC Profile\0\0" + zlib.compress(photo.icc_profile)))
    if photo.exif:  # eXIf holds the TIFF structure without the JPEG APP1 "Exif\0\0" prefix
        chunks.append((b"eXIf", photo.exif[6:] if photo.exif.startswith(b"Exif\0\0") else photo.exif))

    def rows() -> Iterator[bytes]:
        row = np.empty((width, planes), ">u2")
        for y in range(height):
            row[:, :3] = photo.rgb[y]
            if photo.alpha is not None:
                row[:, 3] = photo.alpha[y]
            yield row.tobytes()

    writer = png.Writer(width, height, greyscale=False, alpha=photo.alpha is not None, bitdepth=16)
    writer.write_packed(_ChunksAfterHeader(handle, chunks), rows())


class _ChunksAfterHeader:
    """A binary file that inserts PNG chunks right after the signature and IHDR (the first 33 bytes):
    pypng's Writer cannot add iCCP or eXIf, which belong before the image data."""

    _HEADER = 8 + 4 + 4 + 13 + 4  # signature, then IHDR's length, tag, data and CRC

    def __init__(self, out: BinaryIO, chunks: list[tuple[bytes, bytes]]):
        self.out, self.chunks, self.written = out, chunks, 0

    def write(self, data: bytes) -> None:
        if self.chunks and self.written + len(data) >= self._HEADER:
            cut = self._HEADER - self.written
            self.out.write(data[:cut])
            for tag, body in self.chunks:
                png.write_chunk(self.out, tag, body)
            self.chunks = []
            self.out.write(data[cut:])
        else:
            self.out.write(data)
        self.written += len(data)


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

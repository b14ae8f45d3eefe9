"""16-bit PNG in and out through pypng: Pillow reads 16-bit RGB(A) PNG as 8-bit and cannot write it.

Read: the bit depth from the header (`_png_bit_depth`), the samples as uint16 with alpha from an
alpha channel or a tRNS colour (`_decode_png16`), and the EXIF without decoding the pixels
(`_png16_exif`). Written: 16-bit RGB(A) row by row, with the iCCP and eXIf chunks put before the
image data (`_write_png16`). Used by export/photo_files.py, which picks this path for 16-bit PNGs.
"""
from __future__ import annotations

import zlib
from typing import BinaryIO, Iterator

import numpy as np
import png  # pypng: Pillow reads 16-bit RGB(A) PNG as 8-bit and cannot write it
from PIL import Image, ImageCms

from phone2dslr.export.photo import Photo, PhotoError
from phone2dslr.export.photo_color import _other_rgb_profile


# ---------------------------------------------------------------------------------------------
# Decoding.

def _png_bit_depth(path: str) -> int:
    """The bit depth in a PNG's IHDR (signature, IHDR length and tag, width, height, then depth)."""
    with open(path, "rb") as f:
        head = f.read(26)
    if len(head) < 26 or head[12:16] != b"IHDR":
        raise PhotoError("cannot decode: no PNG header")
    return head[24]


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


# ---------------------------------------------------------------------------------------------
# Encoding.

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

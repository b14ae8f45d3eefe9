"""Real photo files for the enhance tests: 16-bit PNGs (pypng), alpha, grey, and ICC-tagged photos.

`icc_profile` builds a real ICC v2 matrix/TRC RGB profile (LittleCMS reads and converts with it), so
the colour-conversion tests need no profile file from the system.
"""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import png

# D50-adapted colorants (rXYZ, gXYZ, bXYZ) of Adobe RGB (1998): a wider gamut than sRGB.
ADOBE_RGB = ((0.6097, 0.3111, 0.0195), (0.2053, 0.6257, 0.0609), (0.1492, 0.0632, 0.7446))
# ... and of sRGB, for a profile that is sRGB by its description
SRGB = ((0.4361, 0.2225, 0.0139), (0.3851, 0.7169, 0.0971), (0.1431, 0.0606, 0.7141))


def icc_profile(description: str, colorants=ADOBE_RGB, gamma: float = 2.2) -> bytes:
    """A minimal ICC v2 RGB display profile: description, white point, colorants and one gamma curve."""
    def s15(v: float) -> bytes:
        return struct.pack(">i", int(round(v * 65536)))

    def xyz(v) -> bytes:
        return b"XYZ \0\0\0\0" + b"".join(s15(c) for c in v)

    text = description.encode("ascii")
    desc = b"desc\0\0\0\0" + struct.pack(">I", len(text) + 1) + text + b"\0" + bytes(4 + 4 + 2 + 1 + 67)
    curve = b"curv\0\0\0\0" + struct.pack(">IH", 1, int(round(gamma * 256))) + b"\0\0"
    tags = [(b"desc", desc), (b"cprt", b"text\0\0\0\0no copyright\0"), (b"wtpt", xyz((0.9642, 1.0, 0.8249))),
            (b"rXYZ", xyz(colorants[0])), (b"gXYZ", xyz(colorants[1])), (b"bXYZ", xyz(colorants[2])),
            (b"rTRC", curve), (b"gTRC", curve), (b"bTRC", curve)]
    offset, table, data = 128 + 4 + 12 * len(tags), b"", b""
    for sig, body in tags:
        body += bytes(-len(body) % 4)
        table += sig + struct.pack(">II", offset + len(data), len(body))
        data += body
    header = (struct.pack(">I", offset + len(data)) + bytes(4) + struct.pack(">I", 0x02100000) + b"mntrRGB XYZ "
              + struct.pack(">6H", 2024, 1, 1, 0, 0, 0) + b"acsp" + bytes(4 * 4 + 8 + 4)
              + s15(0.9642) + s15(1.0) + s15(0.8249) + bytes(4 + 16 + 28))
    return header + struct.pack(">I", len(tags)) + table + data


def gradient16(height: int = 24, width: int = 1024) -> np.ndarray:
    """uint16 [H, W, 3]: R rises 64 levels a pixel across (1024 levels), G falls, B rises down the rows."""
    across = np.arange(width, dtype=np.uint32) * 64 % 65536
    r = np.broadcast_to(across, (height, width))
    b = np.broadcast_to((np.arange(height, dtype=np.uint32) * 2000)[:, None], (height, width))
    return np.stack([r, r[:, ::-1], b], -1).astype(np.uint16)


def write_png16(path: str | os.PathLike, samples: np.ndarray, alpha: np.ndarray | None = None,
                icc: bytes | None = None) -> None:
    """A 16-bit PNG written by pypng: grey [H, W] or RGB [H, W, 3], plus an alpha plane [H, W] and an
    iCCP chunk (added after the header: pypng cannot write one)."""
    grey = samples.ndim == 2
    planes = [samples] if grey else [samples[..., i] for i in range(3)]
    if alpha is not None:
        planes.append(alpha)
    height, width = samples.shape[:2]
    rows = np.stack(planes, -1).reshape(height, -1)
    buffer = io.BytesIO()
    png.Writer(width, height, greyscale=grey, alpha=alpha is not None, bitdepth=16).write(buffer, rows)
    chunks = list(png.Reader(bytes=buffer.getvalue()).chunks())
    if icc is not None:
        chunks.insert(1, (b"iCCP", b"ICC Profile\0\0" + zlib.compress(icc)))
    with open(path, "wb") as f:
        png.write_chunks(f, chunks)


def read_png(path: str | os.PathLike) -> tuple[np.ndarray, dict]:
    """Any PNG through pypng, exactly as stored: ([H, W, planes] uint8/uint16, pypng's info)."""
    with open(path, "rb") as f:
        width, height, rows, info = png.Reader(file=f).read()
        values = np.array([np.asarray(row) for row in rows])
    return values.reshape(height, width, info["planes"]).astype(np.uint16 if info["bitdepth"] > 8 else np.uint8), info


def save_tiny_generator(folder: str, filters: int, seed: int) -> str:
    """A two-layer, norm-free generator (9x9 conv with `filters` ReLU channels, 3x3 sigmoid conv to
    RGB; receptive-field radius 5) with seeded random weights, saved with the image signatures
    under `folder`; returns the SavedModel path. TensorFlow is imported here, not by the module."""
    import tf_keras as keras

    from phone2dslr.trainer.serving import export_image_generator

    keras.utils.set_random_seed(seed)
    image = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(filters, 9, padding="same", activation="relu")(image)
    x = keras.layers.Conv2D(3, 3, padding="same", activation="sigmoid")(x)
    export_image_generator(keras.Model(image, x), folder)
    return folder

"""`phone2dslr enhance` with a `.tflite` file: LiteRT alone, no TensorFlow.

A streamable file of a model that normalizes over the image (export/tflite_stages.py wrote its stage
signatures and plan) runs stage by stage (export/streamed_tflite.py). Any other file is tiled:
with the receptive-field radius of its graph (export/tflite_graph.py), else of its metadata
(export/tflite_metadata.py), else `overlap` (--overlap), else, for a fixed-size model that must be
tiled, DEFAULT_OVERLAP; a file with none of these runs on whole photos.
"""
from __future__ import annotations

import struct

from phone2dslr.export import streamed_tflite, tflite_graph, tflite_metadata, tflite_runtime, tiles
from phone2dslr.export.enhance import Enhancer, _one_line
from phone2dslr.export.enhance_checks import DEFAULT_OVERLAP, EnhanceError
from phone2dslr.export.streamed_tflite import DEFAULT_STREAM_MEMORY


def load_tflite(path: str, threads: int, overlap: int | None, storage: str = "float32",
                stream_memory: float = DEFAULT_STREAM_MEMORY) -> Enhancer:
    """A .tflite file on LiteRT (no TensorFlow): a streamable file of a normalized model
    (export/streamed_tflite.py), or tiled with its radius from the graph, metadata or `overlap`.
    Raises EnhanceError (one line) for a file that cannot be read or loaded, or `overlap` given
    for a streamable file."""

    try:
        content = tflite_runtime.read_bytes(path)
        runner = tflite_runtime.TFLiteRunner(content, threads=threads)
    except (ValueError, RuntimeError) as e:  # a damaged flatbuffer; TFLiteExportError: not an image model
        raise EnhanceError(f"model {path} cannot be loaded: {_one_line(e)}") from None
    except OSError as e:
        raise EnhanceError(f"cannot read model {path}: {e.strerror or _one_line(e)}") from None
    enhancer = Enhancer("tflite", runner, fixed=runner.fixed_size, storage=storage, stream_memory=stream_memory)
    try:
        streamed = streamed_tflite.StreamedTFLite(content, threads) if streamed_tflite.read_spec(content) else None
    except (ValueError, IndexError, struct.error) as e:
        raise EnhanceError(f"model {path} has a damaged stream plan: {_one_line(e)}") from None
    if streamed is not None:
        if overlap is not None:
            raise EnhanceError(f"--overlap does not apply to model {path}: it normalizes over the image and is "
                               "streamed exactly (no overlap to choose); leave --overlap out")
        enhancer.streamed = streamed
        enhancer.note = (f"instance norm: streamed exactly in {len(streamed.spec.stages)} stages, or recomputed "
                         f"per tile above {stream_memory:g} MiB of activations")
        return enhancer
    try:
        radius, why = tflite_graph.tflite_radius(content), ""
    except tiles.NotTileableError as e:
        radius, why = None, str(e)
    if overlap is not None:  # tiles overlap by 2 x radius: an odd --overlap is rounded up
        enhancer.radius = -(-overlap // 2)
        enhancer.note = f"tiles overlap {2 * enhancer.radius} px (--overlap)" + (
            f", less than the {2 * radius} px its graph needs: expect seams" if radius and radius > enhancer.radius
            else f"; not exact, its graph cannot be tiled: {why}" if radius is None and why else "")
        return _check_fixed(enhancer, path)
    if radius is not None:
        enhancer.radius, enhancer.note = radius, f"receptive-field radius {radius} px"
        return _check_fixed(enhancer, path)
    try:
        info = tflite_metadata.read_metadata(content)
    except (ValueError, IndexError, TypeError, struct.error):  # a damaged metadata buffer says nothing usable
        info = None
    said = None if info is None else info.tiling.get("overlap")
    if isinstance(said, int) and said >= 0:
        enhancer.radius, enhancer.note = -(-said // 2), f"tiles overlap {said} px (the model's metadata)"
    elif enhancer.fixed:  # a fixed-size model must be tiled: assume an overlap, and say so
        enhancer.radius = DEFAULT_OVERLAP // 2
        enhancer.note = (f"tiles overlap {DEFAULT_OVERLAP} px, assumed: no receptive field in its graph ({why}) "
                         "or metadata; pass --overlap N to set it")
    else:
        enhancer.note = f"whole image per photo (not tileable: {why})"
    return _check_fixed(enhancer, path)


def _check_fixed(enhancer: Enhancer, path: str) -> Enhancer:
    """A fixed-size model's note; EnhanceError when its input cannot hold the overlap."""
    if not enhancer.fixed:
        return enhancer
    rows, cols = enhancer.fixed
    overlap_px = 2 * (enhancer.radius or 0)
    if min(rows, cols) <= overlap_px:
        raise EnhanceError(f"model {path} takes a fixed {rows}x{cols} input, which tiles overlapping by "
                           f"{overlap_px} px cannot use (no output would be kept); pass --overlap N of at most "
                           f"{2 * ((min(rows, cols) - 1) // 2)} to tile it approximately, or use a model with a "
                           "larger input")
    enhancer.note = f"fixed input {rows}x{cols}: tiles of that size; {enhancer.note}"
    return enhancer

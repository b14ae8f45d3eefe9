"""Streaming a photo through an instance-normalized generator, stage by stage: the band loop, NumPy only.

Instance normalization (trainer/instance_norm.py; aiff22/DPED models.py:120-132)

    IN(x) = scale * (x - mean) / sqrt(var + 1e-3) + shift,  mean, var per channel over all H x W

makes a pixel depend on the whole image. export/stream_plan.py cuts the generator into stages at its
normalizations and describes them as a `StreamSpec` (plain names and numbers, JSON in a streamable
`.tflite`); `stream` sweeps the image once per stage in full-width bands of rows, top to bottom:

- a band keeping output rows [r0, r1) reads its inputs on rows [r0 - h, r1 + h) clipped to the image
  (h: the stage's receptive-field radius). The stage zero-pads at the window's edge where the
  whole-image run sees real rows, which only changes the h rows next to it: those are dropped. At
  the image's top and bottom the window stops at the border, whose zero padding is the whole-image
  run's own. Columns are never cut, so only rows need a halo;
- the normalizations that open the stage are given the statistics the previous stage completed;
- the normalizations whose input the stage completes accumulate its exact per-channel mean and
  variance from per-row moments (float32 over W pixels), merged over rows and bands in float64 by
  Chan et al.'s parallel update, more exact than a float32 reduction over H x W pixels;
- what later stages read is stored whole-image ([H, W, C] NumPy arrays, float32, or float16 to halve
  the memory: `storage`). A stage's output takes over the array of an input that no later stage
  reads (same channel count), band by band: kept rows are written at once up to where the next
  band's window starts, the last h rows wait in a small array (`_DelayedRows`). For the official
  DPED generator that leaves two 64-channel arrays alive at any time (a normalization input and the
  residual skip): 1.6 GB float32 or 0.8 GB float16 on a 2048x1536 photo.

Who computes a stage is the caller's `RunStage`: TensorFlow for a Keras model
(export/streamed_norm.py), LiteRT for a streamable `.tflite` (export/streamed_tflite.py). No
TensorFlow here, so `enhance` with a `.tflite` file runs on the minimal runtime install.
"""
from __future__ import annotations

import json
import mmap
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
from numpy.typing import DTypeLike

from phone2dslr.export.tiles import OnTile, _as_batch, float_tile, to_samples

STREAM_NAME = "phone2dslr.stream"  # the TFLite model metadata entry holding a streamable file's StreamSpec JSON
STORAGES = (np.float32, np.float16)
MIN_BAND = 16  # rows; thinner bands spend more on their halo than on their own rows
# A window handed from NumPy to TensorFlow is copied into memory TF gets from malloc; above glibc's
# largest mmap threshold (32 MiB on 64-bit) that is a fresh mmap per band, zero-filled by the kernel
# (measured: 130-row float32 windows of a 2048-wide, 64-channel photo cost ~2 s of system time per
# 512 rows). Bands are thinned so each input window stays below it.
TRANSFER_BYTES = 31 << 20

Stats = tuple[np.ndarray, np.ndarray]  # per-channel (mean, population variance), float64 [C]
# run(stage index, input windows [1, h, W, C] (stage.inputs order), statistics of stage.opens, top, rows)
# -> (stored tensors' kept rows [rows, W, C] (stage.stores order), per stage.stats norm the per-row
#     (mean, var) float32 [rows, C] of its input, the model output's kept rows [1, rows, W, C'] or None)
RunStage = Callable[[int, list, list, int, int], tuple[list, list, Any]]


@dataclass
class StageSpec:
    """One sweep: computes the tensors of one level from `inputs` (tensor names, read whole-image);
    `stores`: tensors kept whole-image for later stages; `stats` / `opens`: indices of the
    normalizations whose input it completes / that it applies; `radius`: halo rows per side."""

    index: int
    inputs: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    stats: list[int] = field(default_factory=list)
    opens: list[int] = field(default_factory=list)
    final: bool = False
    radius: int = 0


@dataclass
class StreamSpec:
    """The stages of a model; per tensor name its channels and the last stage that reads it; per
    normalization the name of its input tensor (also stored by the stage that completes it)."""

    stages: list[StageSpec]
    channels: dict[str, int]
    last_use: dict[str, int]
    norm_inputs: list[str]
    input: str
    output: str

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> "StreamSpec":
        """Raises ValueError (or KeyError / TypeError) for text that is not a spec."""
        data = json.loads(text)
        return cls(stages=[StageSpec(**s) for s in data["stages"]], channels=dict(data["channels"]),
                   last_use=dict(data["last_use"]), norm_inputs=list(data["norm_inputs"]),
                   input=data["input"], output=data["output"])

    def validate(self) -> None:
        """Raises ValueError naming the first way this is not a plan `stream` can run: stages
        numbered 0, 1, ... in order, each reading only the photo and what earlier stages store,
        opening only normalizations an earlier stage completed, completing each normalization whose
        input it stores (or the photo's), with a non-negative integer radius, and only the last one
        computing the output; channel counts positive integers."""
        def fail(why: str) -> None:
            raise ValueError(f"stream plan: {why}")

        def is_int(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        if not self.stages:
            fail("no stages")
        for t, c in self.channels.items():
            if not is_int(c) or c < 1:
                fail(f"tensor {t} has {c!r} channels")
        for t in (self.input, self.output, *self.norm_inputs):
            if t not in self.channels:
                fail(f"tensor {t} has no channel count")
        produced, completed = {self.input}, set()
        for k, stage in enumerate(self.stages):
            if stage.index != k or not is_int(stage.radius) or stage.radius < 0:
                fail(f"stage {k} is numbered {stage.index!r} with radius {stage.radius!r}")
            if stage.final != (k == len(self.stages) - 1):
                fail("the last stage, and only it, must compute the output")
            if any(t not in produced for t in stage.inputs) or any(t not in self.channels for t in stage.stores):
                fail(f"stage {k} reads or stores a tensor no earlier stage stores")
            if len(set(stage.stores)) != len(stage.stores) or produced & set(stage.stores):
                fail(f"stage {k} stores a tensor twice")
            if any(not is_int(j) or j not in completed for j in stage.opens):
                fail(f"stage {k} applies a normalization no earlier stage completed")
            for j in stage.stats:
                if not is_int(j) or not 0 <= j < len(self.norm_inputs) or \
                        self.norm_inputs[j] not in (*stage.stores, self.input):
                    fail(f"stage {k} completes normalization {j!r}, whose input it does not store")
            produced.update(stage.stores)
            completed.update(stage.stats)

    def stored_bytes(self, height: int, width: int, storage: DTypeLike = np.float32) -> int:
        """Most bytes of whole-image arrays alive at once in `stream` (it reuses arrays as
        `_assign_buffers` does: this walks the same choices over channel counts)."""
        arrays: dict[str, int] = {}  # tensor -> channels of the array holding it
        most = 0
        for stage in self.stages:
            dying = [t for t in stage.inputs if t in arrays and self.last_use.get(t) == stage.index]
            taken: set[str] = set()
            for t in stage.stores:
                donor = next((d for d in dying if d not in taken and arrays[d] == self.channels[t]), None)
                if donor is not None:
                    taken.add(donor)
                arrays[t] = self.channels[t]
            most = max(most, sum(c for t, c in arrays.items() if t not in taken))
            for t in dying:
                arrays.pop(t, None)
        return most * height * width * np.dtype(storage).itemsize


def stage_key(index: int, storage: str = "float32") -> str:
    """The signature of stage `index` in a streamable `.tflite` whose kept tensors (in and out) are
    `storage` (float32, float16): stage_<k> or stage_<k>_float16 (export/tflite_stages.py)."""
    return f"stage_{index}" if storage == "float32" else f"stage_{index}_{storage}"


def band_rows(tile: int, width: int) -> int:
    """Rows per band with about the pixels of a `tile` x `tile` tile (at least MIN_BAND) for a photo
    `width` pixels wide: what --tile means for a streamed model."""
    return max(MIN_BAND, (int(tile) * int(tile)) // max(1, int(width)))


def stage_band(spec: StreamSpec, stage: StageSpec, width: int, band: int, storage: DTypeLike = np.float32,
               thin: bool = True) -> int:
    """Rows per band in `stage`: `band`, with `thin` thinned so that no input window ((rows + 2 *
    radius) x width x channels of `storage`) exceeds TRANSFER_BYTES (TensorFlow's copies; LiteRT's
    runner writes windows into its own tensors and passes thin=False); at least 1."""
    if not thin:
        return max(1, band)
    row_bytes = max([width * spec.channels[t] * np.dtype(storage).itemsize for t in stage.inputs if t != spec.input],
                    default=1)
    return max(1, min(band, TRANSFER_BYTES // row_bytes - 2 * stage.radius))


def stream_count(spec: StreamSpec, height: int, width: int, band: int, storage: DTypeLike = np.float32,
                 thin: bool = True) -> int:
    """How many band runs `stream` makes (over all stages; for progress bars)."""
    return sum(-(-height // stage_band(spec, stage, width, band, storage, thin)) for stage in spec.stages)


class _Moments:
    """Per-channel count, mean and M2 (sum of squared deviations), float64, merged band by band
    (Chan, Golub & LeVeque 1979: the parallel variance update)."""

    def __init__(self, channels: int) -> None:
        self.count, self.mean, self.m2 = 0, np.zeros(channels), np.zeros(channels)

    def add(self, width: int, row_means: np.ndarray, row_vars: np.ndarray) -> None:
        """Merge a band: per-row mean and population variance over `width` pixels, [rows, C]."""
        row_means, row_vars = np.asarray(row_means, np.float64), np.asarray(row_vars, np.float64)
        count = width * row_means.shape[0]
        mean = row_means.mean(axis=0)
        m2 = width * (row_vars.sum(axis=0) + ((row_means - mean) ** 2).sum(axis=0))
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * (count / total)
        self.m2 = self.m2 + m2 + delta ** 2 * (self.count * count / total)
        self.count = total

    def result(self) -> Stats:
        """(mean, population variance) per channel, float64 [C]."""
        return self.mean, self.m2 / self.count


def stream(spec: StreamSpec, run: RunStage, image: np.ndarray, *, band: int, storage: DTypeLike = np.float32,
           on_tile: OnTile = None, dtype: DTypeLike = np.float32, thin: bool = True) -> np.ndarray:
    """A photo through the stages of `spec`, each computed once by `run` (module docstring).

    image: [H, W, C] or [1, H, W, C], float in [0, 1] or uint8/uint16 samples (converted per band).
    band: output rows per band (>= 1; with `thin`, thinned per stage by `stage_band`). storage: float32 or
    float16 for the whole-image activations kept between stages. on_tile: called after each band
    of each stage (`stream_count` calls). Returns [1, H, W, C'] of `dtype` (float32: the raw output,
    not clipped). Raises ValueError for band < 1 or another storage dtype.
    """
    storage = np.dtype(storage)
    if band < 1 or storage not in [np.dtype(s) for s in STORAGES]:
        raise ValueError(f"band must be >= 1 rows and storage float32 or float16, got {band}, {storage}")
    x = _as_batch(image)
    height, width = x.shape[1], x.shape[2]
    buffers: dict[str, np.ndarray] = {}
    stats: dict[int, Stats] = {}
    out = np.empty((1, height, width, spec.channels[spec.output]), np.dtype(dtype))
    for stage in spec.stages:
        opens = [stats[j] for j in stage.opens]
        delayed = _assign_buffers(spec, stage, buffers, (height, width), storage)
        moments = {j: _Moments(spec.channels[spec.norm_inputs[j]]) for j in stage.stats}
        h, rows = stage.radius, stage_band(spec, stage, width, band, storage, thin)
        for r0 in range(0, height, rows):
            r1 = min(height, r0 + rows)
            a0, a1 = max(0, r0 - h), min(height, r1 + h)
            windows = [(float_tile(x[:, a0:a1]) if t == spec.input else buffers[t][np.newaxis, a0:a1])
                       for t in stage.inputs]
            stored, band_moments, final = run(stage.index, windows, opens, r0 - a0, r1 - r0)
            safe = max(0, r1 - h) if r1 < height else height  # rows no later band of this stage reads
            for t, value in zip(stage.stores, stored):
                if t in delayed:
                    delayed[t].write(value, r0, safe)
                else:
                    buffers[t][r0:r1] = value
            for j, (mean, var) in zip(stage.stats, band_moments):
                moments[j].add(width, mean, var)
            if stage.final:
                out[:, r0:r1] = to_samples(np.asarray(final), out.dtype)
            if on_tile is not None:
                on_tile()
            # The results may be views into the stage's runtime: let it go before the next stage's starts.
            stored = band_moments = final = None
        stats.update({j: m.result() for j, m in moments.items()})
        for t in stage.inputs:  # free what no later stage reads (taken-over arrays live on under their new id)
            if spec.last_use.get(t) == stage.index:
                buffers.pop(t, None)
    return out


def _whole_image_array(shape: Sequence[int], dtype: np.dtype) -> np.ndarray:
    """An uninitialised array on its own anonymous mmap (freed with the array): page-aligned, and not
    marked for transparent huge pages, which NumPy does for large arrays. Measured on this project's
    machines: filling a fresh 805 MB NumPy array cost up to 1.8 s of system time (kernel compaction
    for huge pages) against 0.3-0.5 s on plain pages, and TensorFlow's copy of each window was
    about 3x faster from 64-byte aligned rows (Eigen's alignment) than from NumPy's 16-byte offset."""
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    try:
        memory = mmap.mmap(-1, max(1, nbytes))
    except OSError as e:  # ENOMEM: out of memory, not a file error
        half = "" if np.dtype(dtype) == np.float16 else "keep them as float16 (--storage float16) or "
        raise MemoryError(f"no memory for {nbytes / 2 ** 20:.0f} MiB of whole-image activations ({e.strerror}); "
                          f"{half}recompute them per tile (a .tflite with --stream-memory 0)") from None
    return np.frombuffer(memory, np.uint8)[:nbytes].view(dtype).reshape(shape)


def _assign_buffers(spec: StreamSpec, stage: StageSpec, buffers: dict[str, np.ndarray], size: tuple[int, int],
                    storage: np.dtype) -> dict[str, "_DelayedRows"]:
    """Give each tensor the stage stores a whole-image array [H, W, C] of `storage`: the array of an
    input read last by this stage if one has its channel count, else a new one. Returns a
    `_DelayedRows` writer for each stored tensor that took over an input's array."""
    dying = [t for t in stage.inputs if t in buffers and spec.last_use.get(t) == stage.index]
    taken: set[str] = set()
    delayed: dict[str, _DelayedRows] = {}
    for t in stage.stores:
        donor = next((d for d in dying if d not in taken and buffers[d].shape[-1] == spec.channels[t]), None)
        if donor is None:
            buffers[t] = _whole_image_array((*size, spec.channels[t]), storage)
        else:
            taken.add(donor)
            buffers[t] = buffers[donor]
            delayed[t] = _DelayedRows(buffers[t])
    return delayed


class _DelayedRows:
    """Writes a stage's output band by band into the array its input still occupies, in place.

    The band keeping rows [r0, r1) has read the input on rows up to r1 + h; the next band reads it
    from r1 - h on. So output rows below that (`safe`) are written at once, and the last h rows wait
    (`pending`, [start, r1): h rows x W x C) until the next band has read the input there. Writing
    by views only: no band-sized copies of the input are made."""

    def __init__(self, array: np.ndarray) -> None:
        self.array, self.start, self.pending = array, 0, array[:0].copy()

    def write(self, rows: np.ndarray, r0: int, safe: int) -> None:
        """rows: output rows [r0, r0 + len(rows)) (converted to the array's dtype); safe: rows < safe may be
        overwritten now (non-decreasing from call to call; the image height on the last band)."""
        n = max(0, min(r0, safe) - self.start)  # pending rows that became safe
        self.array[self.start:self.start + n] = self.pending[:n]
        m = max(0, safe - r0)  # new rows that are safe already
        self.array[r0:r0 + m] = rows[:m]
        self.pending = np.concatenate([self.pending[n:], rows[m:].astype(self.array.dtype)])
        self.start = safe  # pending is now rows [safe, r1): [min(r0, safe), r0) and [max(r0, safe), r1)

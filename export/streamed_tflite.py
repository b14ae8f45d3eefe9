"""Streamable `.tflite` files of instance-normalized generators on LiteRT alone: exact, bounded memory.

A file written by export/tflite_stages.py holds one signature per stage of the generator's stage
plan and the plan itself (a StreamSpec, export/stream_spec.py) in the model metadata entry
STREAM_NAME. `StreamedTFLite` runs it two ways, both equal to the whole-image model up to float
rounding:

- `stream`: each stage sweeps the photo once in full-width bands of rows (export/stream_spec.py);
  what later stages read is kept whole-image (for DPED two 64-channel arrays: 1.6 GB float32 or
  0.8 GB float16 on a 2048x1536 photo). Every layer is computed once.
- `recompute`: nothing is kept whole-image. For each stage k that completes normalizations, every
  tile of the photo is run through stages 0..k (the window shrinks by each stage's halo; at the
  photo's border it does not, as there the zero padding is the whole-image run's own) and the
  statistics of stage k's normalization inputs are accumulated over the tiles' kept parts; a last
  pass runs all stages per tile. Memory is bounded by the tile whatever the photo's size (a 12 MP
  photo fits in well under 1.5 GB), at about (stages + 1) / 2 times the convolutions.

No TensorFlow here: `enhance` with a `.tflite` runs on the minimal runtime install. Each stage gets
a fresh interpreter that is dropped when the stage ends, so one stage's LiteRT buffers (sized by
its band) are freed before the next stage's are allocated.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from numpy.typing import DTypeLike

from phone2dslr.console import native_log_threshold
from phone2dslr.export import stream_spec
from phone2dslr.export.stream_spec import STREAM_NAME, StreamSpec, _Moments, stage_key
from phone2dslr.export.tflite_buffers import read_buffer, signature_names
from phone2dslr.export.tiles import OnTile, _as_batch, float_tile, spans, to_samples

DEFAULT_STREAM_MEMORY = 2048  # MiB of whole-image activations `run` may keep (--stream-memory)
DEFAULT_TILE = 512  # as enhance's --tile: what tile 0 (whole photo) recomputes with when it must
# LiteRT holds about four times the bytes per band pixel that TensorFlow does (its arena plus
# XNNPACK's buffers and indirection tables): bands are a quarter of stream_spec.band_rows. Measured on
# a 2048x1536 photo, official generator: 32-row bands 1883 MiB peak, 128-row 2173 MiB, same speed.
BAND_DIVISOR = 4


def read_spec(content: bytes) -> StreamSpec | None:
    """The StreamSpec of a streamable `.tflite` (bytes); None for any other TFLite file.

    Raises ValueError when the entry is there but is not a plan `stream` can run on this file's
    stage signatures (a damaged file; see StreamSpec.validate)."""
    data = read_buffer(content, STREAM_NAME)
    if data is None:
        return None
    try:
        spec = StreamSpec.from_json(data)
        spec.validate()
    except (KeyError, TypeError, AttributeError, RecursionError) as e:  # JSON of the wrong shapes or types
        raise ValueError(f"{STREAM_NAME} metadata is not a stream plan: {type(e).__name__}: {e}") from None
    signatures = signature_names(content)
    for stage in spec.stages:  # the plan must name what the file's stage signatures take and give
        inputs = set(stage.inputs) | {f"{m}{j}" for j in stage.opens for m in ("mean", "var")}
        outputs = set(stage.stores) | {f"row{m}{j}" for j in stage.stats for m in ("mean", "var")} | (
            {"image"} if stage.final else set())
        found = signatures.get(stage_key(stage.index))
        if found is None or found[0] != inputs or not outputs <= found[1]:
            raise ValueError(f"stream plan: stage {stage.index} does not match the file's signature "
                             f"{stage_key(stage.index)}")
    return spec


def check_streaming(content: bytes, tolerance: float = 1e-2) -> None:
    """Raise ValueError unless the file's stage signatures, streamed in bands and recomputed in tiles
    as its plan says, give its own whole-image `enhance_image` output (clipped to [0, 1]) within
    `tolerance` on a 41x57 probe (0.04-0.16 s). Run at export (the variant parity checks only run
    `enhance_image`) and at load (a plan that is well-formed but not this file's: wrong radius,
    channels, normalization inputs). The tolerance is loose on purpose: a plan that does not fit
    is off by 0.1 or more, while a whole-image float32 MEAN over a badly conditioned activation
    (mean hundreds of times its spread) is itself off by ~1e-3."""
    from phone2dslr.export.tflite_runtime import TFLiteRunner

    yy, xx = np.mgrid[0:41, 0:57].astype(np.float32)
    probe = np.stack([yy / 40, xx / 56, 0.5 + 0.4 * np.sin((xx + yy) / 5)], -1)[np.newaxis]
    streamed = StreamedTFLite(content, threads=1, check=False)
    try:
        whole = TFLiteRunner(content, threads=1)(probe)
        runs = (("streamed", streamed.stream(probe, band=7)),
                ("recomputed", streamed.recompute(probe, tile=streamed.min_tile() + 4)))
    except (ValueError, KeyError, IndexError, TypeError, RuntimeError) as e:  # shapes or names the file lacks
        raise ValueError(f"the stream plan does not run on this file: {type(e).__name__}: "
                         f"{' '.join(str(e).split())[:200]}") from None
    for how, out in runs:
        error = float(np.abs(np.clip(out, 0.0, 1.0) - whole).max())
        if not error <= tolerance:
            raise ValueError(f"the stage signatures {how} differ from the file's whole-image output by "
                             f"{error:.3g} (> {tolerance})")


class StreamedTFLite:
    """A streamable `.tflite` (bytes) on LiteRT: float32 [1, H, W, 3] in [0, 1] -> the model output.

    Raises ValueError when `content` has no stream plan (see `read_spec`)."""

    def __init__(self, content: bytes, threads: int = 2, check: bool = True) -> None:
        """`check`: run `check_streaming` on the file first (ValueError when its plan does not fit)."""
        spec = read_spec(content)
        if spec is None:
            raise ValueError(f"not a streamable TFLite file (no {STREAM_NAME} metadata)")
        self.spec, self.content, self.threads = spec, bytes(content), threads
        if check:
            check_streaming(self.content)

    def _interpreter(self) -> Interpreter:
        with native_log_threshold():  # "Created TensorFlow Lite XNNPACK delegate" (INFO)
            return Interpreter(model_content=self.content, num_threads=self.threads)

    def _runner(self, index: int, interpreter: Interpreter | None = None,
                storage: DTypeLike = np.float32) -> "_StageRunner":
        """Stage `index`'s signature; with float16 storage the one taking and giving the kept tensors
        as float16 when the file has it (else NumPy converts them: slower, same result)."""
        interpreter = interpreter or self._interpreter()
        key = stage_key(index)
        if np.dtype(storage) == np.float16 and stage_key(index, "float16") in interpreter.get_signature_list():
            key = stage_key(index, "float16")
        return _StageRunner(interpreter, key)

    def _call(self, runner: "_StageRunner", index: int, windows: list, stats: list) -> dict[str, np.ndarray]:
        stage = self.spec.stages[index]
        inputs = dict(zip(stage.inputs, windows))
        for j, (mean, var) in zip(stage.opens, stats):
            inputs[f"mean{j}"], inputs[f"var{j}"] = mean, var
        return runner(inputs)

    def stream(self, image: np.ndarray, *, band: int, storage: DTypeLike = np.float32, on_tile: OnTile = None,
               dtype: DTypeLike = np.float32) -> np.ndarray:
        """The photo in full-width bands of `band` rows, every layer once (stream_spec.stream: image,
        band, storage, on_tile and dtype as there). Returns [1, H, W, C'] of `dtype` (float32: not clipped)."""
        runners: dict[int, _StageRunner] = {}

        def run(index: int, windows: list, stats: list, top: int, rows: int) -> tuple[list, list, Any]:
            if index not in runners:
                runners.clear()  # the previous stage's interpreter and its buffers go
                runners[index] = self._runner(index, storage=storage)
            stage = self.spec.stages[index]
            out = self._call(runners[index], index, windows, stats)
            kept = slice(top, top + rows)
            return ([out[t][0, kept] for t in stage.stores],
                    [(out[f"rowmean{j}"][0, kept, 0], out[f"rowvar{j}"][0, kept, 0]) for j in stage.stats],
                    out["image"][:, kept] if stage.final else None)

        return stream_spec.stream(self.spec, run, image, band=band, storage=storage, on_tile=on_tile, dtype=dtype,
                                  thin=False)

    def mode(self, height: int, width: int, storage: DTypeLike = np.float32,
             memory_mib: float = DEFAULT_STREAM_MEMORY) -> str:
        """"stream" when the whole-image activations of a height x width photo fit in `memory_mib`
        MiB as `storage`, else "recompute"."""
        return "stream" if self.spec.stored_bytes(height, width, storage) <= memory_mib * 2 ** 20 else "recompute"

    def band(self, tile: int, height: int, width: int, storage: DTypeLike = np.float32) -> int:
        """Rows per band for `tile` (pixels a side; <= 0: the whole photo in one band per stage); half
        that for float16 storage, the memory-saving mode (measured, 2048x1536: 16-row bands 1088 MiB
        peak and 16.3 s, 32-row 1181 MiB and 15.2 s)."""
        if tile <= 0:
            return height
        rows = stream_spec.band_rows(tile, width) // BAND_DIVISOR // (2 if np.dtype(storage) == np.float16 else 1)
        return max(stream_spec.MIN_BAND, rows)

    def recompute_tile(self, tile: int) -> int:
        """The tile side `run` recomputes with for `tile`: a quarter, as for bands (BAND_DIVISOR), so
        that each stage's LiteRT buffers stay small (all stages' are alive at once), but at least
        twice `min_tile` so the halo does not dominate."""
        return max(2 * self.min_tile(), tile // BAND_DIVISOR)

    def choose(self, height: int, width: int, tile: int, storage: DTypeLike = np.float32,
               memory_mib: float = DEFAULT_STREAM_MEMORY) -> tuple[str, int]:
        """How `run` goes: ("stream", rows per band) when the whole-image activations fit in
        `memory_mib` MiB, else ("recompute", tile side). tile <= 0 (whole photo): one band per stage,
        or recomputed in the tiles of the default --tile when even that does not fit."""
        if self.mode(height, width, storage, memory_mib) == "stream":
            return "stream", self.band(tile, height, width, storage)
        return "recompute", self.recompute_tile(tile if tile > 0 else DEFAULT_TILE)

    def run(self, image: np.ndarray, *, tile: int, storage: DTypeLike = np.float32,
            memory_mib: float = DEFAULT_STREAM_MEMORY, on_tile: OnTile = None,
            dtype: DTypeLike = np.float32) -> np.ndarray:
        """The photo streamed or recomputed as `choose` says. image, storage, on_tile, dtype as for
        `stream`; returns [1, H, W, C'] of `dtype`."""
        x = _as_batch(image)
        mode, size = self.choose(x.shape[1], x.shape[2], tile, storage, memory_mib)
        if mode == "stream":
            return self.stream(x, band=size, storage=storage, on_tile=on_tile, dtype=dtype)
        return self.recompute(x, tile=size, on_tile=on_tile, dtype=dtype)

    def count(self, height: int, width: int, tile: int, storage: DTypeLike = np.float32,
              memory_mib: float = DEFAULT_STREAM_MEMORY) -> int:
        """How many band or tile runs `run` makes (for progress bars)."""
        mode, size = self.choose(height, width, tile, storage, memory_mib)
        if mode == "stream":
            return stream_spec.stream_count(self.spec, height, width, size, storage, thin=False)
        return self.recompute_count(height, width, size)

    def min_tile(self) -> int:
        """The smallest recompute tile: twice the halo of all stages, plus one."""
        return 2 * self._halo(len(self.spec.stages) - 1) + 1

    def _passes(self) -> list[int]:
        """The last stage of each recompute pass: every stage that completes statistics, then the last."""
        return [s.index for s in self.spec.stages if s.stats] + [len(self.spec.stages) - 1]

    def recompute_count(self, height: int, width: int, tile: int) -> int:
        """How many tile runs `recompute` makes (for progress bars)."""
        return sum(len(spans(height, tile, self._halo(k))) * len(spans(width, tile, self._halo(k)))
                   for k in self._passes())

    def _halo(self, last: int) -> int:
        return sum(s.radius for s in self.spec.stages[:last + 1])

    def recompute(self, image: np.ndarray, *, tile: int, on_tile: OnTile = None,
                  dtype: DTypeLike = np.float32) -> np.ndarray:
        """The photo in tiles of at most `tile` px a side, stages 0..k per tile for each pass k
        (module docstring). image and dtype as for `stream`. Raises ValueError for tile < 1."""
        if tile < 1:
            raise ValueError(f"tile must be >= 1 px, got {tile}")
        x = _as_batch(image)
        height, width = x.shape[1], x.shape[2]
        spec, stats = self.spec, {}
        out = np.empty((1, height, width, spec.channels[spec.output]), np.dtype(dtype))
        # One interpreter for all stages: its XNNPACK delegate shares one workspace between them.
        interpreter = self._interpreter()
        runners = {s.index: self._runner(s.index, interpreter) for s in spec.stages}
        for last in self._passes():
            stage = spec.stages[last]
            moments = {j: _Moments(spec.channels[spec.norm_inputs[j]]) for j in stage.stats}
            halo = self._halo(last)
            for rows in spans(height, tile, halo):
                for cols in spans(width, tile, halo):
                    values = self._chain(runners, x, rows, cols, last, stats)

                    def kept(t: str) -> np.ndarray:  # the tile's kept part of tensor t, [1, h, w, C]
                        value, (top, left) = values[t]
                        return value[:, rows.keep_start - top:rows.keep_stop - top,
                                     cols.keep_start - left:cols.keep_stop - left]

                    for j in stage.stats:
                        part = kept(spec.norm_inputs[j])[0].astype(np.float64)
                        moments[j].add(part.shape[1], part.mean(axis=1), part.var(axis=1))
                    if stage.final:
                        out[:, rows.keep_start:rows.keep_stop, cols.keep_start:cols.keep_stop] = to_samples(
                            kept(spec.output), out.dtype)
                    if on_tile is not None:
                        on_tile()
            stats.update({j: m.result() for j, m in moments.items()})
        return out

    def _chain(self, runners: dict[int, "_StageRunner"], x: np.ndarray, rows: Any, cols: Any, last: int,
               stats: dict) -> dict[str, tuple[np.ndarray, tuple[int, int]]]:
        """Stages 0..last on one tile window: tensor name -> (its valid part [1, h, w, C], the image
        (row, column) of that part's top left). Each stage runs on the part of its inputs that all are
        valid; its output is valid except `radius` px next to window edges inside the photo."""
        spec = self.spec
        height, width = x.shape[1], x.shape[2]
        top, left, bottom, right = rows.read_start, cols.read_start, rows.read_stop, cols.read_stop
        values = {spec.input: (float_tile(x[:, top:bottom, left:right]), (top, left))}
        later = spec.stages[1:last + 1]  # later[i:]: the stages after stage i
        keep = {spec.norm_inputs[j] for j in spec.stages[last].stats} | {spec.output}
        for stage in spec.stages[:last + 1]:
            windows = []
            for t in stage.inputs:
                value, (t_top, t_left) = values[t]
                windows.append(value[:, top - t_top:bottom - t_top, left - t_left:right - t_left])
            out = self._call(runners[stage.index], stage.index, windows, [stats[j] for j in stage.opens])
            h = stage.radius
            cut_top, cut_left = (h if top > 0 else 0), (h if left > 0 else 0)
            bottom, right = bottom - (h if bottom < height else 0), right - (h if right < width else 0)
            top, left = top + cut_top, left + cut_left
            for t in stage.stores + ([spec.output] if stage.final else []):
                value = out["image" if t == spec.output else t]  # a view, valid until this stage runs again
                values[t] = (value[:, cut_top:cut_top + bottom - top, cut_left:cut_left + right - left], (top, left))
            for t in [t for t in values if t not in keep and not any(t in s.inputs for s in later[stage.index:])]:
                del values[t]  # read by no later stage of this chain
        return values


class _StageRunner:
    """One stage signature on its own interpreter, called with NumPy arrays of any float dtype.

    Inputs are written straight into LiteRT's input tensors (float16 windows are converted while
    copying) and outputs are returned as views of its output tensors, valid until the next call:
    no band-sized temporaries, which glibc would otherwise keep around between bands (measured:
    SignatureRunner's copies added ~300 MB to the peak of a 2048x1536 photo). Uses the
    interpreter wrapper's subgraph-indexed calls, as SignatureRunner itself does."""

    def __init__(self, interpreter: Interpreter, key: str) -> None:
        self.interpreter = interpreter
        with native_log_threshold():
            runner = interpreter.get_signature_runner(key)
        self.wrapper, self.subgraph = self.interpreter._interpreter, runner._subgraph_index
        self.inputs = {name: d["index"] for name, d in runner.get_input_details().items()}
        self.outputs = {name: d["index"] for name, d in runner.get_output_details().items()}
        self.shapes: dict[str, tuple[int, ...]] = {}

    def _tensor(self, index: int) -> np.ndarray:
        return self.wrapper.tensor(self.wrapper, index, self.subgraph)

    def __call__(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        resized = not self.shapes
        for name, value in inputs.items():
            shape = tuple(np.shape(value))
            if self.shapes.get(name) != shape:
                self.wrapper.ResizeInputTensor(self.inputs[name], np.array(shape, np.int32), False, self.subgraph)
                self.shapes[name], resized = shape, True
        if resized:
            with native_log_threshold():
                self.wrapper.AllocateTensors(self.subgraph)
        for name, value in inputs.items():
            self._tensor(self.inputs[name])[...] = value
        self.wrapper.Invoke(self.subgraph)
        return {name: self._tensor(index) for name, index in self.outputs.items()}

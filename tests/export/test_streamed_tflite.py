"""Streamable TFLite of instance-normalized generators (issue 12, item 2): export/tflite_stages.py
writes stage signatures and the stream plan, export/streamed_tflite.py runs them on LiteRT.

Small models with random weights and random normalization affines (so that the statistics matter),
at awkward sizes: bands of one row, tiles that do not divide the photo, a photo smaller than a tile.
Both ways of running the file (streamed with whole-image activations, recomputed per tile) must
equal the whole-image Keras model within float rounding.
"""
import errno
import json
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
import tf_keras as keras
from PIL import Image

from phone2dslr.export import (official_dped, stream_spec, streamed_tflite, tflite_convert, tflite_metadata,
                              tflite_stages)
from phone2dslr.export.enhance import EnhanceError, load_enhancer
from phone2dslr.export.tflite_buffers import put_buffer, read_buffer
from phone2dslr.export.tflite_runtime import TFLiteExportError, TFLiteRunner
from phone2dslr.trainer.dped_networks import build_generator
from phone2dslr.trainer.serving import export_image_generator
from tests.export.photo_helpers import save_tiny_generator
from tests.export.test_enhance_litert import NO_TF
from tests.export.test_streamed_norm import _image, _psnr, _randomize_norms


@pytest.fixture(scope="module")
def official():
    keras.utils.set_random_seed(2)
    model = _randomize_norms(official_dped.build_generator(filters=8), 2)
    return model, streamed_tflite.StreamedTFLite(tflite_stages.convert_streamable(model))


@pytest.fixture(scope="module")
def own():
    """The project's generator with instance norm and the global skip (the photo is read again last)."""
    keras.utils.set_random_seed(5)
    model = build_generator(filters=6, num_blocks=2, norm="instance", global_skip=True)
    head = model.get_layer("correction")
    head.set_weights([np.random.default_rng(5).normal(0, 0.2, head.kernel.shape).astype("f"), head.bias.numpy()])
    model = _randomize_norms(model, 5)
    return model, streamed_tflite.StreamedTFLite(tflite_stages.convert_streamable(model))


def test_the_file_carries_its_plan_and_a_whole_image_signature(official):
    model, streamed = official
    spec = streamed_tflite.read_spec(streamed.content)
    assert spec == stream_spec.StreamSpec.from_json(spec.to_json())
    assert [s.radius for s in spec.stages] == [5, 1, 1, 1, 1, 1, 1, 1, 6]
    assert [s.stats for s in spec.stages] == [[0], [1], [2], [3], [4], [5], [6], [7], []]
    x = _image(21, 34, seed=1)  # apps that run whole photos call `enhance_image`
    np.testing.assert_allclose(TFLiteRunner(streamed.content)(x), np.clip(model(x).numpy(), 0, 1), atol=1e-5)


def test_conversion_makes_normalized_savedmodels_streamable_and_says_so(own, tmp_path):
    """tflite_convert.convert (TFLiteExport, import-dped) writes float32/float16 of an instance-normalized
    Keras SavedModel streamable, its metadata says how to run it; a local model stays a plain file."""
    model, _ = own
    export_image_generator(model, str(tmp_path / "normalized"))
    save_tiny_generator(str(tmp_path / "local"), filters=4, seed=1)
    for variant in ("float32", "float16"):
        content = tflite_convert.convert(str(tmp_path / "normalized"), variant)
        described, ok = tflite_metadata.with_metadata(content, variant, {"name": "n", "version": "1", "author": "a",
                                                                         "license": "l"})
        info = tflite_metadata.read_metadata(described)
        assert ok and info.tiling["streamable"] and "stage_<k>" in info.description
        x = _image(26, 31, seed=2)
        out = streamed_tflite.StreamedTFLite(described).stream(x, band=5)
        assert _psnr(out, model(x).numpy()) > (90 if variant == "float32" else 50)
    assert streamed_tflite.read_spec(tflite_convert.convert(str(tmp_path / "local"), "float32")) is None
    assert streamed_tflite.read_spec(tflite_convert.convert(str(tmp_path / "normalized"), "dynamic_int8")) is None


@pytest.mark.parametrize("mode,size,rows", [
    ("stream", (37, 53), 1), ("stream", (37, 53), 6), ("stream", (37, 53), 37), ("stream", (1, 40), 3),
    ("stream", (23, 1), 7),  # rows: the band
    ("recompute", (61, 83), 40), ("recompute", (61, 83), 45), ("recompute", (30, 90), 37),
    ("recompute", (20, 25), 64)])  # rows: the tile side
def test_streamed_and_recomputed_equal_whole_image(official, mode, size, rows):
    model, streamed = official
    x = _image(*size, seed=rows)
    calls = []
    if mode == "stream":
        out = streamed.stream(x, band=rows, on_tile=lambda: calls.append(1))
        count = stream_spec.stream_count(streamed.spec, size[0], size[1], rows, thin=False)
    else:
        out = streamed.recompute(x, tile=rows, on_tile=lambda: calls.append(1))
        count = streamed.recompute_count(size[0], size[1], rows)
    np.testing.assert_allclose(out, model(x).numpy(), atol=1e-5, rtol=0)
    assert len(calls) == count


def test_own_generator_with_global_skip(own):
    model, streamed = own
    x = _image(29, 41, seed=7)
    whole = model(x).numpy()
    np.testing.assert_allclose(streamed.stream(x, band=4), whole, atol=1e-5, rtol=0)
    np.testing.assert_allclose(streamed.recompute(x, tile=2 * streamed.min_tile() - 5), whole, atol=1e-5, rtol=0)


def test_statistics_from_one_tile_would_fail(official, monkeypatch):
    """The equality above needs statistics over every tile: a merge that forgets is far off."""
    model, streamed = official
    x = _image(61, 83, seed=3)
    original = stream_spec._Moments.add

    def last_only(self, width, means, variances):
        self.count, self.mean, self.m2 = 0, np.zeros_like(self.mean), np.zeros_like(self.m2)
        original(self, width, means, variances)

    monkeypatch.setattr(streamed_tflite._Moments, "add", last_only)
    assert np.abs(streamed.recompute(x, tile=40) - model(x).numpy()).max() > 1e-2


def test_streamed_memory_is_two_whole_image_arrays(official, monkeypatch):
    """As in TensorFlow (test_streamed_norm.py): the skip and one normalization input, reused in place."""
    model, streamed = official
    made, original = [], stream_spec._whole_image_array
    monkeypatch.setattr(stream_spec, "_whole_image_array", lambda shape, dtype: made.append(shape) or
                        original(shape, dtype))
    x = _image(70, 50, seed=6)
    np.testing.assert_allclose(streamed.stream(x, band=16), model(x).numpy(), atol=1e-5, rtol=0)
    assert made == [(70, 50, 8), (70, 50, 8)]
    assert streamed.spec.stored_bytes(70, 50) == 2 * 70 * 50 * 8 * 4  # what enhance's --stream-memory compares


def test_float16_storage_within_55_db(official):
    model, streamed = official
    x = _image(45, 61, seed=4)
    half = streamed.stream(x, band=9, storage=np.float16)
    assert half.dtype == np.float32 and _psnr(half, model(x).numpy()) > 55


def test_recompute_memory_does_not_grow_with_the_photo(official):
    """NumPy memory of a recomputed run is the output and a few tiles, whatever the photo's size:
    with 8 channels a whole-image activation of the large photo would be 1.2 MB."""
    _, streamed = official
    peaks = []
    for size in ((96, 100), (192, 200)):
        x = (_image(*size) * 255).astype(np.uint8)
        tracemalloc.start()
        streamed.recompute(x, tile=48, dtype=np.uint8)
        peaks.append(tracemalloc.get_traced_memory()[1] - x.nbytes)
        tracemalloc.stop()
    assert peaks[1] < peaks[0] + 192 * 200 * 3 + 50_000  # the larger output, nothing that scales with H x W x C
    assert peaks[1] < 192 * 200 * 8 * 4


def test_enhance_picks_streaming_or_recomputing_by_memory(official, tmp_path):
    model, streamed = official
    path = tmp_path / "official.tflite"
    path.write_bytes(streamed.content)
    x = (_image(50, 70, seed=9)[0] * 255).astype(np.uint8)
    expected = np.round(np.clip(model(x[np.newaxis].astype(np.float32) / 255).numpy(), 0, 1) * 255)
    for memory, mode in ((2048, "stream"), (0, "recompute")):
        enhancer = load_enhancer(str(path), stream_memory=memory)
        assert enhancer.streamed.mode(50, 70, memory_mib=memory) == mode
        out = enhancer(x, tile=40, dtype=np.uint8)
        assert np.abs(out.astype(int) - expected).max() <= 1


def test_enhance_with_a_streamable_tflite_imports_no_tensorflow(official, tmp_path):
    _, streamed = official
    (tmp_path / "official.tflite").write_bytes(streamed.content)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    for extra in ([], ["--stream-memory", "0", "--storage", "float16"]):
        result = subprocess.run([sys.executable, "-c", NO_TF, "enhance", str(tmp_path / "a.png"), "--model",
                                 str(tmp_path / "official.tflite"), "--out", str(tmp_path / "out"), "--tile", "40",
                                 "--no-progress", *extra], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "loaded: []" in result.stderr and "streamed exactly in 9 stages" in result.stderr


def _with_plan(content: bytes, change) -> bytes:
    data = json.loads(read_buffer(content, stream_spec.STREAM_NAME))
    change(data)
    return put_buffer(content, stream_spec.STREAM_NAME, json.dumps(data).encode())


@pytest.mark.parametrize("change", [
    lambda d: d["stages"][-1].update(final=False), lambda d: d.update(stages=[]),
    lambda d: d.update(stages=d["stages"][:5]), lambda d: d["stages"][0].update(inputs=["t99"]),
    lambda d: d["stages"][1].update(radius=-3), lambda d: d["stages"][1].update(radius="5"),
    lambda d: d["stages"][0].update(stats=[9]), lambda d: d["stages"][3].update(index=42),
    lambda d: d["stages"][1].update(opens=[5]), lambda d: d["stages"].reverse(),
    lambda d: d["channels"].update({d["output"]: 0}), lambda d: d.update(output="t99"),
    lambda d: d["stages"][2].update(stores=d["stages"][2]["stores"][::-1][:1]),  # valid plan, wrong for the file
    lambda d: d["stages"][2]["stores"].append(d["stages"][2]["stores"][0]),
    lambda d: d["stages"][1].update(inputs=None),
    lambda d: d.update(input=["t0"]),
], ids=["no-final", "no-stages", "too-few", "unknown-input", "negative-radius", "string-radius", "bad-stats",
        "misnumbered", "opens-early", "reversed", "zero-channels", "unknown-output", "not-the-files-stores",
        "stored-twice", "null-inputs", "list-input"])
def test_a_damaged_plan_is_one_line_at_load(official, tmp_path, change):
    """A plan that is JSON but not this file's (helper break-test: these wrote uninitialised photos or
    raised tracebacks mid-run) is refused when the model loads."""
    path = tmp_path / "damaged.tflite"
    path.write_bytes(_with_plan(official[1].content, change))
    with pytest.raises(EnhanceError, match="damaged stream plan") as e:
        load_enhancer(str(path))
    assert "\n" not in str(e.value)


def test_out_of_memory_for_the_activations_says_what_to_do(official, monkeypatch):
    def no_memory(*args, **kwargs):
        raise OSError(errno.ENOMEM, "Cannot allocate memory")

    monkeypatch.setattr(stream_spec.mmap, "mmap", no_memory)
    with pytest.raises(MemoryError, match="--storage float16.*--stream-memory 0"):
        official[1].stream(_image(20, 30), band=8)


def test_whole_photo_runs_respect_the_memory_limit_and_bands_are_not_thinned(official, monkeypatch):
    _, streamed = official
    assert streamed.choose(40, 60, 0, memory_mib=2048) == ("stream", 40)  # --tile 0: one band per stage
    assert streamed.choose(40, 60, 0, memory_mib=0) == ("recompute", streamed.recompute_tile(512))
    monkeypatch.setattr(stream_spec, "TRANSFER_BYTES", 1)  # TensorFlow's copy limit does not apply here
    assert streamed.count(40, 60, 0) == len(streamed.spec.stages)


def test_the_stages_are_checked_against_the_whole_image_signature(official, tmp_path, monkeypatch):
    """At export and at load the stages run on a probe: a plan that is well-formed but not the file's
    (second break-test: wrong radius, channels, normalization inputs gave silently wrong photos or
    mid-run tracebacks) is refused, and stages that disagree fail the conversion."""
    model, streamed = official
    streamed_tflite.check_streaming(streamed.content)  # the real file passes
    for change in (lambda d: [stage.update(radius=0) for stage in d["stages"]],
                   lambda d: d["stages"][8].update(radius=2), lambda d: d["norm_inputs"].__setitem__(0, "t2"),
                   lambda d: d["channels"].update(t3=9), lambda d: d.update(output="t2")):
        path = tmp_path / "wrong.tflite"
        path.write_bytes(_with_plan(streamed.content, change))
        with pytest.raises(EnhanceError, match="damaged stream plan"):
            load_enhancer(str(path))
    monkeypatch.setattr(streamed_tflite.StreamedTFLite, "recompute", lambda self, x, **kw: np.zeros_like(x))
    with pytest.raises(TFLiteExportError, match="recomputed differ from the file's whole-image output"):
        tflite_stages.convert_streamable(model)

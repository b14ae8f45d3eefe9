"""The report's pictures, part by part: training curves from history.json, the per-patch PSNR gain
histogram on a real GZIP TFRecord split through an exported SavedModel, and full-size photos through
a real float32 TFLite file (LiteRT, tiled); each checked against NumPy restatements, not our code.
"""
import io
import json
import math
import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest

import phone2dslr    # noqa: F401  (Keras/TF environment first)
from PIL import Image

from phone2dslr.components.run_report import curves, gain_histogram, photos, render, visual_sections
from phone2dslr.components.run_report.crops import Enhancer
from phone2dslr.export.tflite_convert import convert
from phone2dslr.trainer.entry import history_record
from tests.components import run_report_helpers as h

SVG = "{http://www.w3.org/2000/svg}"


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of images in [0, 1]: 10 log10(1 / MSE), restated in NumPy (float64)."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), np.float32) / 255.0


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny generator, its SavedModel (trainer/serving.py signatures) and the Keras function itself."""
    root = tmp_path_factory.mktemp("model")
    generator = h.generator(0.05, 0)
    artifact = h.save_model(root, "candidate", generator)
    return {"root": root, "saved_model": os.path.join(artifact.uri, "Format-Serving"),
            "keras": lambda x: np.clip(generator(x[np.newaxis]).numpy()[0], 0, 1)}


def test_history_json_round_trips_and_every_logged_series_is_drawn_in_exactly_one_plot(tmp_path):
    record = history_record({k: np.float32(v) for k, v in h.HISTORY.items()}, 2, 50, True)
    assert record["best_epoch"] == 2 and record["steps_per_epoch"] == 50 and record["keep_best"] is True
    (tmp_path / curves.HISTORY_FILE).write_text(json.dumps(record))
    read = curves.read_history(str(tmp_path))
    assert set(read["history"]) == set(h.HISTORY) and math.isnan(read["history"]["val_psnr"][2])
    grouped = {p.anchor: {**p.series, **p.reference} for p in curves.panels(read["history"])}
    assert set(grouped["curve-weighted"]) == {"g_loss", "w_content_loss", "w_color_loss", "texture_weighted"}
    assert set(grouped["curve-terms"]) == {"content_loss", "color_loss"}
    assert set(grouped["curve-discriminator"]) == {"d_loss", "d_texture_loss"}
    assert set(grouped["curve-accuracy"]) == {"d_accuracy"}
    assert set(grouped["curve-val-psnr"]) == {"val_psnr", "val_psnr_input"}  # the phone's line beside the model's
    assert set(grouped["curve-other"]) == {"learning_rate"}  # a name no pattern knows still gets drawn

    plots, note = curves.for_report(str(tmp_path))
    assert "3 epoch(s) of 50 steps" in note and "epoch 2, whose weights were exported" in note
    drawn = []
    for plot in plots:
        ids = {el.get("id") for el in ET.fromstring(plot.svg).iter() if el.get("id")}
        drawn += [name for name in h.HISTORY if name in ids]
        assert ET.fromstring(plot.svg).tag == SVG + "svg"
    assert sorted(drawn) == sorted(h.HISTORY)  # each series in one plot, none twice, none lost
    assert plots == curves.for_report(str(tmp_path))[0]  # the same history gives the same bytes


def test_the_curves_note_states_the_recipe_its_average_and_how_it_differs(tmp_path):
    from phone2dslr.trainer import recipes

    demo = recipes.get("dped", "demo")
    record = history_record({"g_loss": [1.0, 0.5]}, 2, 10, True, recipes.as_dict(demo, {"batch_size": 8}))
    (tmp_path / curves.HISTORY_FILE).write_text(json.dumps(record))
    note = curves.for_report(str(tmp_path))[1]
    assert f"Recipe dped/demo, following {demo.source}" in note
    assert f"moving average of its weights (decay {demo.ema_decay:g})" in note
    assert demo.deviations in note and "overridden by the config: batch_size=8" in note
    paper = curves.recipe_note(recipes.as_dict(recipes.get("dped", "paper")))
    assert "Recipe dped/paper" in paper and "moving average" not in paper  # the source keeps no EMA
    assert curves.recipe_note({}) == ""  # a history written before recipes were recorded


def test_missing_or_malformed_history_leaves_a_note_not_a_failure(tmp_path):
    assert curves.for_report(None)[1].startswith("no training curves: the Trainer's model_run output")
    plots, note = curves.for_report(str(tmp_path))
    assert plots == [] and "no history.json in" in note
    (tmp_path / curves.HISTORY_FILE).write_text('{"history": [1, 2]}')
    with pytest.raises(curves.HistoryError, match="no 'history' object"):
        curves.read_history(str(tmp_path))


def _split(tmp_path, n: int):
    """n paired patches, then one without DSLR, one with an other-sized DSLR, one identical to its DSLR."""
    images = h.smooth_images(n + 1, h.SIZE, h.SIZE, seed=5)
    triples = [(h.png(p), h.png(np.clip(p * 0.9 + 0.05, 0, 1)), b"iphone") for p in images[:n]]
    triples += [(h.png(images[0]), b"", b"sony"), (h.png(images[1]), h.png(images[1][:8]), b"sony"),
                (h.png(images[n]), h.png(images[n]), b"sony")]
    h.write_split(tmp_path / "Split-test", triples)
    return str(tmp_path / "Split-test"), triples[:n]


def test_patch_gains_restate_psnr_per_patch_over_the_whole_split(model, tmp_path):
    split_dir, pairs = _split(tmp_path, 8)
    scores, split_pairs, skipped = gain_histogram.patch_gains(Enhancer(model["saved_model"]), split_dir, 100)
    assert split_pairs == 8 + 2 and skipped == {"dslr_size_mismatch": 1, "identical_to_dslr": 1}
    assert list(scores["position"]) == list(range(8))
    for i, (phone_png, dslr_png, _) in enumerate(pairs):
        phone, dslr = _decode(phone_png), _decode(dslr_png)
        assert scores["psnr_phone"][i] == pytest.approx(_psnr(phone, dslr), abs=1e-3)
        assert scores["gain"][i] == pytest.approx(_psnr(model["keras"](phone), dslr) - _psnr(phone, dslr), abs=2e-3)

    gains = scores["gain"]
    summary = gain_histogram.summarize(scores, "test", split_pairs, 100, skipped)
    assert not summary.sampled and summary.patches == 8
    assert summary.worse == int(np.sum(gains < 0)) and summary.worse_by["1"] == int(np.sum(gains < -1))
    assert summary.median == pytest.approx(float(np.median(gains)))
    assert [w[0] for w in summary.worst] == list(np.argsort(gains)[:gain_histogram.WORST_SHOWN])
    edges = gain_histogram.bin_edges(gains)
    assert np.any(np.isclose(edges, 0.0)) and edges[0] <= gains.min() and edges[-1] >= gains.max()
    bars = [el for el in ET.fromstring(summary.histogram.svg).iter() if el.get("id", "").startswith("gain-bar")]
    assert len(bars) == len(edges) - 1

    sample, _, _ = gain_histogram.patch_gains(Enhancer(model["saved_model"]), split_dir, 3)
    # a seeded sample spread over the split: one draw from each third of the 10 paired examples (their
    # positions: 0-7, 9, 10); the last third's draw is not scored when it is 9 (size) or 10 (identical)
    thirds = [range(0, 3), range(3, 6), (6, 7)]
    assert 2 <= len(sample["position"]) <= 3
    assert all(p in third for p, third in zip(sample["position"], thirds))
    _, note = gain_histogram.for_report(Enhancer(model["saved_model"]), split_dir, "test", 3)
    assert "a seeded sample of 3 of its 10 patches" in note


def _tflite_dir(tmp_path, model, shipped: list[str]) -> tuple[dict, str]:
    folder = tmp_path / "tflite"
    folder.mkdir()
    (folder / "float32.tflite").write_bytes(convert(model["saved_model"], "float32"))
    results = {"shipped": shipped, "variants": {v: {"file": f"{v}.tflite"} for v in shipped}}
    return results, str(folder)


def test_shipped_model_prefers_float32_then_any_shipped_variant_then_the_saved_model():
    saved = "/m/Format-Serving"
    both = {"shipped": ["float16", "float32"], "variants": {v: {"file": f"{v}.tflite"} for v in ("float16", "float32")}}
    assert photos.shipped_model(both, "/t", saved) == photos.ShippedModel("/t/float32.tflite",
                                                                          "float32.tflite (LiteRT)")
    only16 = {"shipped": ["float16"], "variants": {"float16": {"file": "float16.tflite"}, "float32": {"file": None}}}
    assert photos.shipped_model(only16, "/t", saved).path == "/t/float16.tflite"
    none = photos.shipped_model({"shipped": [], "variants": {}}, "/t", saved)
    assert none.path == saved and "no TFLite variant passed" in none.fallback_note
    assert "no TFLite export" in photos.shipped_model(None, None, saved).fallback_note
    assert photos.full_size_dir("dped", "data", "iphone") == os.path.join("data", "iphone", "test_data",
                                                                            "full_size_test_images")
    assert photos.full_size_dir("unpaired", "data", "iphone") == ""


def test_photos_are_enhanced_whole_by_the_shipped_tflite_file_in_tiles(model, tmp_path):
    results, folder = _tflite_dir(tmp_path, model, ["float32"])
    phone_dir, dslr_dir, pixels = h.photos(tmp_path)
    shipped = photos.shipped_model(results, folder, model["saved_model"])
    items, note = photos.for_report(shipped, str(phone_dir), str(dslr_dir), 5)
    assert [p.name for p in items] == ["0.png", "1.png"]  # notes.txt is not a photo
    assert "by float32.tflite (LiteRT) (tiled 512 px, receptive-field radius 1 px)" in note
    wide, small = items
    assert wide.size == (40, 530) and wide.display_size == (40, 530)  # 530 px: two 512 px tiles
    top, left, hh, ww = wide.zoom_box
    assert (hh, ww) == (40, 120) and left == (530 - 120) // 2
    enhanced = model["keras"](pixels["0.png"])  # the whole photo in one Keras call
    crop = (slice(top, top + hh), slice(left, left + ww))
    assert np.abs(_decode(wide.enhanced_zoom_png) - enhanced[crop]).max() <= 1.01 / 255
    assert np.array_equal(_decode(wide.phone_zoom_png), pixels["0.png"][crop])
    dslr = np.asarray(Image.open(dslr_dir / "0.png"), np.float32) / 255
    assert wide.psnr_phone == pytest.approx(_psnr(pixels["0.png"], dslr), abs=1e-3)
    assert wide.psnr_model == pytest.approx(_psnr(enhanced, dslr), abs=0.01)
    assert _decode(wide.enhanced_jpeg).shape == (40, 530, 3) and wide.dslr_zoom_png is not None
    assert small.dslr_jpeg is not None and small.dslr_zoom_png is None and small.psnr_phone is None
    assert "not pixel-aligned" in small.dslr_note
    jpeg, shown = photos.display_jpeg(pixels["0.png"], side=100)
    assert shown == (8, 100) and _decode(jpeg).shape == (8, 100, 3)


def test_photo_notes_say_why_there_are_none(model, tmp_path):
    shipped = photos.shipped_model(None, None, model["saved_model"])
    assert "turned off" in photos.for_report(shipped, str(tmp_path), "", 0)[1]
    assert "no folder of full-size photos given" in photos.for_report(shipped, "", "", 3)[1]
    assert f"no folder {tmp_path / 'absent'}" in photos.for_report(shipped, str(tmp_path / "absent"), "", 3)[1]
    phone_dir, _, _ = h.photos(tmp_path)
    items, note = photos.for_report(shipped, str(phone_dir), "", 1)
    assert len(items) == 1 and "the SavedModel stands in" in note and "no DSLR photos given" in note


def test_visual_sections_escape_names_and_name_absent_parts():
    png = h.png(np.full([4, 4, 3], 0.5))
    photo = render.FullPhoto("<a>.jpg", (4, 4), (4, 4), png, png, None, (0, 0, 4, 4), 3, png, png, None, 0.5)
    gate = render.Gate(blessed=True, has_baseline=False, baseline_note="")
    page = render.render_page(render.ReportData("t", gate, photos=[photo], photos_note="n<1>"))
    assert "&lt;a&gt;.jpg" in page and "<a>.jpg" not in page and "n&lt;1&gt;" in page
    assert 'alt="DSLR photo' not in page and page.count('width="12" height="12"') == 2  # crops shown at 3x
    assert "no gain histogram" in page and "no training curves to show" in page
    assert 'oninput="' + visual_sections.e(visual_sections.SLIDER_SCRIPT) + '"' in page

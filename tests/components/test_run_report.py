"""RunReport for real: a tiny model exported by trainer/serving.py, TFX's own Evaluator executor
(TFMA with the project's EvalConfig) for a blessed and a not-blessed run, the real TFLiteExport
executor, the image ExampleGen's summary writer, full-size photos and a Trainer history.json (built
in run_report_helpers.py); then the page is checked as HTML and, where a `chromium` binary exists,
loaded in headless Chromium: every image decoded and not blank, the slider moving, a screenshot.
"""
import html
import html.parser
import io
import json
import os
import re

import numpy as np
import pytest

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
from PIL import Image
from tfx import types
from tfx.types import standard_artifacts

from phone2dslr.components.run_report import render, results
from phone2dslr.components.run_report.component import RunReport, RunReportArtifact
from phone2dslr.components.run_report.executor import Executor, parse_parameters
from phone2dslr.config import EvalConfig
from phone2dslr.trainer.preprocessing import decode_image
from tests.components import run_report_helpers as h

CONTENT_LOSS = "pixel (no pretrained VGG available)"
RUN_INFO = {"model": "dped", "content loss": CONTENT_LOSS, "note": "<script>alert(1)</script> & more"}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    examples, triples = h.examples(root)
    candidate = h.save_model(root, "candidate", h.generator(0.05, 0))
    baseline = h.save_model(root, "baseline", h.generator(0.0, 1))  # identity: as good as the phone photo
    blessed = h.evaluate(root, "first", examples, candidate, None,
                         EvalConfig(min_psnr_gain=-100.0, min_ssim_gain=-1.0))
    rejected = h.evaluate(root, "second", examples, candidate, baseline, EvalConfig(min_psnr_gain=5.0))
    photos_dir, dslr_dir, _ = h.photos(root)
    return {"root": root, "examples": examples, "model": candidate, "blessed": blessed, "rejected": rejected,
            "tflite": h.tflite(root, candidate, examples), "ingest": h.ingest(root), "triples": triples,
            "model_run": h.model_run(root), "photos_dir": str(photos_dir), "dslr_dir": str(dslr_dir)}


def _report(run, tmp_path, evaluation, blessing, **extra_inputs) -> tuple[RunReportArtifact, str]:
    output = RunReportArtifact()
    output.uri = str(tmp_path / "report")
    inputs = {"model": [run["model"]], "evaluation": [evaluation], "blessing": [blessing],
              "examples": [run["examples"]], "model_run": [run["model_run"]],
              **{k: [v] for k, v in extra_inputs.items()}}
    params = {"eval_split": "test", "num_crops": 4, "crop_size": 128, "title": "tiny run",
              "run_info": json.dumps(RUN_INFO), "photos_dir": run["photos_dir"], "photos_dslr_dir": run["dslr_dir"]}
    Executor().Do(inputs, {"report": [output]}, params)
    with open(os.path.join(output.uri, "index.html"), encoding="utf-8") as f:
        return output, f.read()


def _overall(evaluation_uri: str, name: str, model_name: str = "candidate") -> float:
    """A metric of the overall slice as TFMA stored it (one model alone is stored with name "")."""
    import tensorflow_model_analysis as tfma

    names = {model_name, ""} if model_name == "candidate" else {model_name}
    for record in tfma.load_metrics(evaluation_uri):
        if not record.slice_key.single_slice_keys:
            for kv in record.metric_keys_and_values:
                if kv.key.name == name and kv.key.model_name in names and not kv.key.is_diff:
                    return kv.value.double_value.value
    raise KeyError(name)


def _by_slice(evaluation_uri: str, name: str) -> dict[str, float]:
    """One metric of the candidate per slice ("Overall", "source = iphone", ...) as TFMA stored it."""
    import tensorflow_model_analysis as tfma

    values = {}
    for record in tfma.load_metrics(evaluation_uri):
        for kv in record.metric_keys_and_values:
            if kv.key.name == name and kv.key.model_name in ("", "candidate") and not kv.key.is_diff:
                values[results.slice_name(record.slice_key)] = kv.value.double_value.value
    return values


def _text(page: str) -> str:
    """The page's visible text with entities decoded, whitespace collapsed."""
    import html as html_lib

    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_blessed_run_shows_decision_metrics_tflite_ingest_and_samples(run, tmp_path):
    evaluation, blessing = run["blessed"]
    assert blessing.get_int_custom_property("blessed") == 1
    output, page = _report(run, tmp_path, evaluation, blessing, tflite_models=run["tflite"],
                           ingest_report=run["ingest"])
    text = _text(page)

    assert "BLESSED: this model may be pushed" in text and "NOT BLESSED" not in text
    assert "no baseline: first blessed model" in text
    assert f"content loss {CONTENT_LOSS}" in text
    psnr, psnr_input = _overall(evaluation.uri, "psnr"), _overall(evaluation.uri, "input_psnr")
    assert f"{psnr:.2f} dB" in text and f"{psnr_input:.2f} dB" in text
    assert f"{_overall(evaluation.uri, 'ssim'):.4f}" in text
    for slice_name in ("Overall", "source = iphone", "source = sony"):
        assert slice_name in text
    assert ">= -100" in text  # the value threshold, with its pass
    assert re.search(r"<tr><td>float32</td>.*?shipped", page)
    assert re.search(r"<tr><td>float16</td>.*?failed.*?below the bound 200\.00 dB", page)
    assert "Examples per split" in text and "undecodable" in text and "rejects.jsonl" in text
    assert "/photos/a&lt;b&gt;.jpg" in page  # reject paths are escaped too
    samples = re.search(r'<section id="samples">(.*?)</section>', page).group(1)
    assert samples.count('<figure class="crop">') == 4
    assert samples.count('<img alt="') == 12  # before, after, DSLR for each of the 4 samples
    assert "shown at 16x (nearest neighbour)" in text  # 16 px patches upscaled to 256 px

    assert output.get_int_custom_property("blessed") == 1
    assert output.get_float_custom_property("psnr") == pytest.approx(psnr)
    assert output.get_float_custom_property("psnr_input") == pytest.approx(psnr_input)
    assert 0.0 < output.get_float_custom_property("ssim") <= 1.0
    assert 0.0 < output.get_float_custom_property("ssim_input") <= 1.0
    assert output.get_string_custom_property("index_html").endswith("index.html")

    # pooled PSNR and MS-SSIM: on the page beside per-image PSNR and SSIM, and on the artifact
    quality = re.search(r'<section id="quality">(.*?)</section>', page).group(1)
    for name in ("psnr_pooled", "psnr_pooled_input", "ms_ssim", "ms_ssim_input"):
        value = _overall(evaluation.uri, name)
        assert fmt_value(name, value) in quality, name
        assert output.get_float_custom_property(name) == pytest.approx(value), name
    assert "PSNR (pooled MSE)" in quality and "MS-SSIM" in quality
    tflite_table = re.search(r'<table class="tflite">(.*?)</table>', page).group(1)
    assert "Pooled PSNR vs DSLR" in tflite_table and "MS-SSIM vs DSLR" in tflite_table


def fmt_value(name: str, value: float) -> str:
    return f"{value:.2f} dB" if "psnr" in name else f"{value:.4f}"


def test_tfma_pools_psnr_over_each_slice_and_the_whole_split(run):
    """Through TFX's Evaluator (TFMA merging the metric state over batches and slices), the phone
    input's pooled PSNR is DPED's formula over every value of the slice, restated here in NumPy."""
    evaluation, _ = run["blessed"]
    images = {}
    for phone, dslr, source in run["triples"]:
        pair = [decode_image(x).numpy().astype(np.float64) for x in (phone, dslr)]
        images.setdefault(f"source = {source.decode()}", []).append(pair)
    images["Overall"] = [p for pairs in list(images.values()) for p in pairs]
    pooled, per_image = _by_slice(evaluation.uri, "psnr_pooled_input"), _by_slice(evaluation.uri, "input_psnr")
    assert set(pooled) == set(images) == {"Overall", "source = iphone", "source = sony"}
    for name, pairs in images.items():
        mse = sum(np.sum((p - d) ** 2) for p, d in pairs) / sum(d.size for _, d in pairs)
        assert pooled[name] == pytest.approx(20 * np.log10(1 / np.sqrt(mse)), rel=1e-5), name
        assert per_image[name] >= pooled[name] - 1e-6  # Jensen: the mean of -log MSE is at least -log of the mean
    # 16 px patches get one MS-SSIM scale: MS-SSIM is SSIM there (both positive here)
    ms_ssim, ssim = _by_slice(evaluation.uri, "ms_ssim_input"), _by_slice(evaluation.uri, "input_ssim")
    for name in images:
        assert ms_ssim[name] == pytest.approx(ssim[name], rel=1e-5)


def test_not_blessed_run_names_failed_thresholds_and_compares_with_the_baseline(run, tmp_path):
    evaluation, blessing = run["rejected"]
    assert blessing.get_int_custom_property("blessed") == 0
    output, page = _report(run, tmp_path, evaluation, blessing)
    text = _text(page)

    assert "NOT BLESSED: this model will not be pushed" in text
    reasons = re.search(r'<ul class="reasons">(.*?)</ul>', page).group(1)
    assert "psnr_gain (enhanced_and_input) fails threshold [&gt;= 5]" in reasons
    assert "psnr (enhanced) fails threshold [change vs baseline &gt;= -0.5]" in reasons
    assert "source = iphone" in reasons and "Overall" in reasons
    baseline_psnr, psnr = _overall(evaluation.uri, "psnr", "baseline"), _overall(evaluation.uri, "psnr")
    baseline_table = re.search(r'<section id="baseline">(.*?)</section>', page).group(1)
    assert f"{psnr:.2f} dB" in baseline_table and f"{baseline_psnr:.2f} dB" in baseline_table
    assert f"{psnr - baseline_psnr:+.2f} dB" in baseline_table
    assert "baseline: latest blessed model" in text
    assert "FAIL" in text
    assert "no TFLite export in this run" in text and "no ingest report given" in text
    assert output.get_int_custom_property("blessed") == 0


def test_baseline_copied_from_the_candidate_counts_as_no_baseline(run, tmp_path):
    """LatestPushedModel (Kubeflow) copies the candidate when nothing was pushed: all changes are 0."""
    evaluation, blessing = run["rejected"]
    copy = standard_artifacts.Model()
    copy.uri = str(tmp_path / "copy")
    copy.set_string_custom_property("baseline_source", "candidate")
    _, page = _report(run, tmp_path, evaluation, blessing, baseline_model=copy)
    baseline = re.search(r'<section id="baseline">(.*?)</section>', page).group(1)
    assert "no baseline: first blessed model (nothing pushed yet" in baseline and "<table" not in baseline


class _TagChecker(html.parser.HTMLParser):
    """Collects tag nesting errors and every URL the page would fetch or link to."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.urls, self.tags = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
        else:
            self.stack.pop()


def test_page_is_well_formed_self_contained_and_escaped(run, tmp_path):
    evaluation, blessing = run["rejected"]
    _, page = _report(run, tmp_path, evaluation, blessing, tflite_models=run["tflite"], ingest_report=run["ingest"])
    checker = _TagChecker()
    checker.feed(page)
    checker.close()
    assert checker.errors == [] and checker.stack == []
    assert "script" not in checker.tags
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in page
    inline = re.compile(r"data:image/(png|jpeg|svg\+xml);base64,")
    external = [u for u in checker.urls if not (inline.match(u) or u.startswith("file:///"))]
    assert external == []
    assert not re.search(r"(https?:)?//[a-z]", re.sub(r"(file:///|data:image/[a-z+]+;base64,)[^\"<]+", "", page))
    # the one script: the slider's inline handler, which only moves the divider
    assert re.findall(r'\son[a-z]+="([^"]*)"', page) == ["this.parentNode.style.setProperty(&#x27;--pos&#x27;,"
                                                          "this.value+&#x27;%&#x27;)"] * 2


def test_render_marks_unpaired_samples_and_absent_parts():
    gate = render.Gate(blessed=False, has_baseline=False, baseline_note="no baseline", problems=["<odd> problem"])
    crop = render.Crop("source <x>", b"\x89PNG", b"\x89PNG", None, (8, 10), 4)
    page = render.render_page(render.ReportData("t<1>", gate, crops=[crop]))
    assert "<title>t&lt;1&gt;</title>" in page and "&lt;odd&gt; problem" in page
    assert 'style="width:40px;height:32px">no paired DSLR image' in page
    assert page.count("<img ") == 2
    assert "the evaluation holds no metrics" in page


def test_component_declares_channels_and_checks_parameters_early():
    def channel(t):
        return types.Channel(type=t)

    component = RunReport(model=channel(standard_artifacts.Model),
                          evaluation=channel(standard_artifacts.ModelEvaluation),
                          blessing=channel(standard_artifacts.ModelBlessing),
                          examples=channel(standard_artifacts.Examples), run_info=RUN_INFO, num_crops=2)
    assert set(component.inputs) == {"model", "evaluation", "blessing", "examples"}
    assert component.outputs["report"].type is RunReportArtifact
    assert RunReportArtifact.TYPE_NAME == "phone2dslr.RunReport"
    assert parse_parameters(component.exec_properties)["run_info"] == RUN_INFO
    with pytest.raises(ValueError, match="run_info must be a JSON object"):
        RunReport(model=channel(standard_artifacts.Model), evaluation=channel(standard_artifacts.ModelEvaluation),
                  blessing=channel(standard_artifacts.ModelBlessing), examples=channel(standard_artifacts.Examples),
                  run_info="[1, 2]")


def test_artifact_type_name_compiles_for_kubeflow_v2():
    from tfx.orchestration.kubeflow.v2 import compiler_utils

    assert "phone2dslr.RunReport" in compiler_utils.get_artifact_schema(RunReportArtifact)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB of images in [0, 1]: 10 log10(1 / MSE), restated in NumPy (float64)."""
    return float(10 * np.log10(1.0 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def test_page_shows_full_size_photos_gain_histogram_and_training_curves(run, tmp_path):
    evaluation, blessing = run["blessed"]
    _, page = _report(run, tmp_path, evaluation, blessing, tflite_models=run["tflite"])
    photos = re.search(r'<section id="photos">(.*?)</section>', page).group(1)
    text = _text(photos)
    assert "enhanced at full resolution by float32.tflite (LiteRT" in text  # the variant that shipped
    assert photos.count('<figure class="photo">') == 2 and photos.count('type="range"') == 2
    # 0.png has a pixel-aligned DSLR photo: whole-photo PSNR restated here from the files
    generator = h.generator(0.05, 0)  # the candidate's weights (same seed)
    phone = np.asarray(Image.open(os.path.join(run["photos_dir"], "0.png")), np.float32) / 255
    dslr = np.asarray(Image.open(os.path.join(run["dslr_dir"], "0.png")), np.float32) / 255
    enhanced = np.clip(generator(phone[np.newaxis]).numpy()[0], 0, 1)
    shown = re.search(r"0\.png: 530x40 px enhanced at full resolution.*?phone ([\d.]+) dB, enhanced ([\d.]+) dB",
                      text)
    assert float(shown.group(1)) == pytest.approx(_psnr(phone, dslr), abs=0.006)
    assert float(shown.group(2)) == pytest.approx(_psnr(enhanced, dslr), abs=0.02)
    assert "1.png: 48x60 px" in text and "not pixel-aligned" in text
    assert photos.count('alt="DSLR crop') == 1 and photos.count('alt="enhanced crop') == 2

    gain = _text(re.search(r'<section id="gain">(.*?)</section>', page).group(1))
    gains = []
    for phone_png, dslr_png, _ in run["triples"]:
        p, d = (np.asarray(Image.open(io.BytesIO(x)), np.float32) / 255 for x in (phone_png, dslr_png))
        gains.append(_psnr(np.clip(generator(p[np.newaxis]).numpy()[0], 0, 1), d) - _psnr(p, d))
    worse = sum(g < 0 for g in gains)
    assert "all 6 of its patches with a DSLR target" in gain
    assert f"{worse} of 6 patches ({worse / 6:.1%}) got worse" in gain
    assert f"median {np.median(gains):+.2f} dB" in gain

    curves = re.search(r'<section id="curves">(.*?)</section>', page).group(1)
    for anchor in ("curve-weighted", "curve-terms", "curve-discriminator", "curve-accuracy", "curve-val-psnr",
                   "curve-val-ssim", "curve-other"):
        assert f'id="{anchor}"' in curves, anchor
    assert curves.count("data:image/svg+xml;base64,") == 7


@pytest.mark.skipif(h.CHROMIUM is None,
                    reason="no `chromium` binary on PATH (Debian package: apt-get install chromium)")
def test_page_renders_in_headless_chromium_with_every_image_decoded_and_not_blank(run, tmp_path):
    evaluation, blessing = run["blessed"]
    output, page = _report(run, tmp_path, evaluation, blessing, tflite_models=run["tflite"],
                           ingest_report=run["ingest"])
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", h.PROBE + "</body>"), encoding="utf-8")
    dom = h.chromium(tmp_path, "--virtual-time-budget=20000", "--dump-dom", "file://" + str(probed))
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, "the probe did not run: " + dom[-500:]
    result = json.loads(html.unescape(found.group(1)))
    images = result["images"]
    assert len(images) == page.count("<img ")
    kinds = {kind: [i for i in images if i["alt"].startswith(kind)] for kind in
             ("phone photo", "enhanced photo", "DSLR photo", "phone crop", "enhanced crop", "DSLR crop")}
    assert [len(v) for v in kinds.values()] == [2, 2, 2, 2, 2, 1]
    plots = [i for i in images if i["alt"].startswith(("Generator loss", "Validation", "Discriminator",
                                                        "Loss terms", "Other", "PSNR gain"))]
    assert len(plots) == 8  # seven training-curve panels and the gain histogram
    for image in images:
        assert image["complete"] and image["w"] > 0 and image["h"] > 0 and not image["err"], image
        assert image["std"] > 1.0, image  # not one flat colour: the pixels (or the plot's lines) are there
    big = kinds["enhanced photo"][0]
    assert (big["w"], big["h"]) == (530, 40)  # the whole photo, not a patch
    assert result["slider"]["pos"] == "20%" and "20%" in result["slider"]["clip"]

    shot = tmp_path / "page.png"
    h.chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,2400", "file://" + os.path.join(output.uri,
                                                                                                    "index.html"))
    pixels = tf.io.decode_png(shot.read_bytes(), channels=3).numpy()
    assert pixels.shape[:2] == (2400, 1200)
    assert pixels.std() > 10  # text, tables and images, not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # the inlined photos render

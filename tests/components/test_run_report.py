"""RunReport for real: a tiny model exported by export/saved_model.py, TFX's own Evaluator executor
(TFMA with the project's EvalConfig) for a blessed and a not-blessed run, the real TFLiteExport
executor and the image ExampleGen's summary writer; then the page is checked as HTML and, where a
`chromium` binary exists, rendered to a PNG.
"""
import html.parser
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
import tf_keras as keras
from google.protobuf import json_format
from tfx import types
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_artifacts

from phone2dslr.components.image_example_gen import report as ingest_report
from phone2dslr.components.image_example_gen.component import IngestReport
from phone2dslr.components.image_example_gen.layout import IngestOptions
from phone2dslr.components.run_report import render, results
from phone2dslr.components.run_report.component import RunReport, RunReportArtifact
from phone2dslr.components.run_report.executor import Executor, parse_parameters
from phone2dslr.components.tflite_export.component import TFLiteModels
from phone2dslr.components.tflite_export.executor import Executor as TFLiteExecutor
from phone2dslr.trainer.serving import export_generator
from phone2dslr.config import EvalConfig
from phone2dslr.pipeline.evaluation import create_eval_config
from phone2dslr.trainer.preprocessing import decode_image

SIZE = 16  # patch side: Transform decodes to SIZE x SIZE, and SSIM needs >= 11
SOURCES = (b"iphone", b"sony")
CONTENT_LOSS = "pixel (no pretrained VGG available)"
RUN_INFO = {"model": "dped", "content loss": CONTENT_LOSS, "note": "<script>alert(1)</script> & more"}


class _DecodeTransform(tf.Module):
    """Stands in for the Transform layer: decodes the patches as trainer/preprocessing.py does."""

    def __call__(self, raw):
        out = {key: tf.map_fn(lambda d: decode_image(d, SIZE), tf.reshape(raw[key], [-1]),
                              fn_output_signature=tf.TensorSpec([SIZE, SIZE, 3], tf.float32))
               for key in ("phone", "dslr")}
        out["source"] = tf.reshape(raw["source"], [-1])
        return out


def _generator(stddev: float, seed: int) -> keras.Model:
    """Residual convolution: stddev 0 is the identity (a do-nothing baseline), larger adds noise."""
    keras.utils.set_random_seed(seed)
    image = keras.Input([None, None, 3], name="image")
    init = keras.initializers.RandomNormal(stddev=stddev) if stddev else "zeros"
    delta = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init)(image)
    return keras.Model(image, keras.layers.Add()([image, delta]))


def _save_model(root, name: str, generator: keras.Model) -> standard_artifacts.Model:
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in ("phone", "dslr", "source")}
    export_generator(generator, str(root / name / "Format-Serving"), _DecodeTransform(), spec)
    model = standard_artifacts.Model()
    model.uri = str(root / name)
    return model


def _png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).numpy()


def _example(phone: bytes, dslr: bytes, source: bytes) -> bytes:
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
               for k, v in (("phone", phone), ("dslr", dslr), ("source", source))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def _examples(root) -> tuple[standard_artifacts.Examples, list[tuple[bytes, bytes, bytes]]]:
    """The test split, and its (phone PNG, DSLR PNG, source) triples."""
    rng = np.random.default_rng(0)
    coarse = rng.random([6, SIZE // 4, SIZE // 4, 3]).astype(np.float32)
    phones = np.clip(tf.image.resize(coarse, [SIZE, SIZE], method="bicubic").numpy(), 0, 1)
    folder = root / "examples" / "Split-test"
    folder.mkdir(parents=True)
    triples = [(_png(phone), _png(phone * 1.1 + 0.03), SOURCES[i % 2]) for i, phone in enumerate(phones)]
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for triple in triples:
            writer.write(_example(*triple))
    examples = standard_artifacts.Examples()
    examples.uri = str(root / "examples")
    examples.split_names = json.dumps(["test"])
    return examples, triples


def _evaluate(root, name: str, examples, model, baseline, cfg: EvalConfig):
    """TFX's Evaluator executor with the project's EvalConfig: real metrics, validations, blessing."""
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / name / "evaluation"), str(root / name / "blessing")
    inputs = {"examples": [examples], "model": [model]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    evaluator_executor.Executor().Do(
        inputs, {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_config": json_format.MessageToJson(create_eval_config(cfg)), "example_splits": json.dumps(["test"])})
    return evaluation, blessing


def _tflite(root, model, examples) -> TFLiteModels:
    output = TFLiteModels()
    output.uri = str(root / "tflite")
    params = {"variants": json.dumps(["float32", "float16"]),
              "min_parity_psnr": json.dumps({"float32": 45.0, "float16": 200.0}),  # float16 cannot pass 200 dB
              "eval_split": "test", "max_eval_images": 2, "latency_height": 16, "latency_width": 16,
              "latency_runs": 1}
    TFLiteExecutor().Do({"model": [model], "examples": [examples]}, {"tflite_models": [output]}, params)
    return output


def _ingest(root) -> IngestReport:
    report = IngestReport()
    report.uri = str(root / "ingest")
    counts = {"files.seen": 15, "files.kept": 12, "files.rejected": 3, "examples.train": 4, "examples.eval": 1,
              "examples.test": 6, "rejects.undecodable": 2, "rejects.too_small": 1}
    ingest_report.write_summary(counts, IngestOptions(input_base=str(root / "photos")), report.uri)
    with open(os.path.join(report.uri, ingest_report.REJECTS_FILE), "w") as f:
        f.write(json.dumps({"path": "/photos/a<b>.jpg", "split": "train", "reason": "undecodable"}) + "\n")
    return report


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("run")
    examples, triples = _examples(root)
    candidate = _save_model(root, "candidate", _generator(0.05, 0))
    baseline = _save_model(root, "baseline", _generator(0.0, 1))  # identity: as good as the phone photo
    blessed = _evaluate(root, "first", examples, candidate, None,
                        EvalConfig(min_psnr_gain=-100.0, min_ssim_gain=-1.0))
    rejected = _evaluate(root, "second", examples, candidate, baseline, EvalConfig(min_psnr_gain=5.0))
    return {"root": root, "examples": examples, "model": candidate, "blessed": blessed, "rejected": rejected,
            "tflite": _tflite(root, candidate, examples), "ingest": _ingest(root), "triples": triples}


def _report(run, tmp_path, evaluation, blessing, **extra_inputs) -> tuple[RunReportArtifact, str]:
    output = RunReportArtifact()
    output.uri = str(tmp_path / "report")
    inputs = {"model": [run["model"]], "evaluation": [evaluation], "blessing": [blessing],
              "examples": [run["examples"]], **{k: [v] for k, v in extra_inputs.items()}}
    params = {"eval_split": "test", "num_crops": 4, "crop_size": 128, "title": "tiny run",
              "run_info": json.dumps(RUN_INFO)}
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
    assert page.count('<figure class="crop">') == 4
    assert page.count('<img alt="') == 12  # before, after, DSLR for each of the 4 samples
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
    external = [u for u in checker.urls if not (u.startswith("data:image/png;base64,") or u.startswith("file:///"))]
    assert external == []
    assert not re.search(r"(https?:)?//[a-z]", re.sub(r"(file:///|data:image/png;base64,)[^\"<]+", "", page))


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


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)


@pytest.mark.skipif(CHROMIUM is None, reason="no `chromium` binary on PATH (Debian: apt-get install chromium)")
def test_page_renders_in_headless_chromium(run, tmp_path):
    evaluation, blessing = run["blessed"]
    output, _ = _report(run, tmp_path, evaluation, blessing, tflite_models=run["tflite"], ingest_report=run["ingest"])
    shot = tmp_path / "page.png"
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                    "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
                    f"--screenshot={shot}", "--window-size=1200,2000",
                    "file://" + os.path.join(output.uri, "index.html")],
                   check=True, timeout=60, capture_output=True)
    pixels = tf.io.decode_png(shot.read_bytes(), channels=3).numpy()
    assert pixels.shape[:2] == (2000, 1200)
    assert pixels.std() > 10  # text, tables and images, not a blank page
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200  # the inlined photos render

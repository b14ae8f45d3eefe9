"""Tiny real inputs for the RunReport tests: a generator exported by trainer/serving.py, GZIP TFRecord
examples, TFX's own Evaluator and the real TFLiteExport executor, full-size photos and a history.json."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
import tf_keras as keras
from google.protobuf import json_format
from PIL import Image
from tfx.components.evaluator import executor as evaluator_executor
from tfx.types import standard_artifacts

from phone2dslr.components.image_example_gen import report as ingest_report
from phone2dslr.components.image_example_gen.component import IngestReport
from phone2dslr.components.image_example_gen.layout import IngestOptions
from phone2dslr.components.tflite_export.component import TFLiteModels
from phone2dslr.components.tflite_export.executor import Executor as TFLiteExecutor
from phone2dslr.config import EvalConfig
from phone2dslr.pipeline.evaluation import create_eval_config
from phone2dslr.trainer.entry import HISTORY_FILE, history_record
from phone2dslr.trainer.preprocessing import decode_image
from phone2dslr.trainer.serving import export_generator

SIZE = 16  # patch side: Transform decodes to SIZE x SIZE, and SSIM needs >= 11
SOURCES = (b"iphone", b"sony")
# A Keras-style history with the DPED and WESPE name patterns, and one name no pattern knows.
HISTORY = {
    "g_loss": [3.0, 2.0, 1.5], "content_loss": [1.0, 0.5, 0.4], "w_content_loss": [1.0, 0.5, 0.4],
    "color_loss": [100.0, 50.0, 40.0], "w_color_loss": [0.1, 0.05, 0.04], "texture_weighted": [0.3, 0.2, 0.1],
    "d_loss": [0.7, 0.69, 0.68], "d_texture_loss": [0.7, 0.6, 0.5], "d_accuracy": [0.5, 0.6, 0.55],
    "val_psnr": [20.0, 21.0, float("nan")], "val_psnr_input": [19.0, 19.0, 19.0], "val_ssim": [0.7, 0.8, 0.8],
    "val_ssim_input": [0.7, 0.7, 0.7], "learning_rate": [1e-4, 1e-4, 1e-4],
}


class DecodeTransform(tf.Module):
    """Stands in for the Transform layer: decodes the patches as trainer/preprocessing.py does."""

    def __call__(self, raw):
        out = {key: tf.map_fn(lambda d: decode_image(d, SIZE), tf.reshape(raw[key], [-1]),
                              fn_output_signature=tf.TensorSpec([SIZE, SIZE, 3], tf.float32))
               for key in ("phone", "dslr")}
        out["source"] = tf.reshape(raw["source"], [-1])
        return out


def generator(stddev: float, seed: int) -> keras.Model:
    """Residual convolution: stddev 0 is the identity (a do-nothing baseline), larger adds noise."""
    keras.utils.set_random_seed(seed)
    image = keras.Input([None, None, 3], name="image")
    init = keras.initializers.RandomNormal(stddev=stddev) if stddev else "zeros"
    delta = keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init)(image)
    return keras.Model(image, keras.layers.Add()([image, delta]))


def save_model(root: Path, name: str, model: keras.Model) -> standard_artifacts.Model:
    spec = {key: tf.io.FixedLenFeature([], tf.string) for key in ("phone", "dslr", "source")}
    export_generator(model, str(root / name / "Format-Serving"), DecodeTransform(), spec)
    artifact = standard_artifacts.Model()
    artifact.uri = str(root / name)
    return artifact


def png(image: np.ndarray) -> bytes:
    return tf.io.encode_png(np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)).numpy()


def example(phone: bytes, dslr: bytes, source: bytes) -> bytes:
    feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v]))
               for k, v in (("phone", phone), ("dslr", dslr), ("source", source)) if v}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def smooth_images(n: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """n photo-like float32 [H, W, 3] images in [0, 1]: bicubic upsampling of coarse noise."""
    coarse = np.random.default_rng(seed).random([n, max(2, height // 4), max(2, width // 4), 3]).astype(np.float32)
    return np.clip(tf.image.resize(coarse, [height, width], method="bicubic").numpy(), 0, 1)


def write_split(folder: Path, triples: list[tuple[bytes, bytes, bytes]]) -> None:
    folder.mkdir(parents=True)
    with tf.io.TFRecordWriter(str(folder / "data_tfrecord-00000-of-00001.gz"), options="GZIP") as writer:
        for triple in triples:
            writer.write(example(*triple))


def examples(root: Path) -> tuple[standard_artifacts.Examples, list[tuple[bytes, bytes, bytes]]]:
    """The test split, and its (phone PNG, DSLR PNG, source) triples."""
    triples = [(png(p), png(p * 1.1 + 0.03), SOURCES[i % 2]) for i, p in enumerate(smooth_images(6, SIZE, SIZE))]
    write_split(root / "examples" / "Split-test", triples)
    artifact = standard_artifacts.Examples()
    artifact.uri = str(root / "examples")
    artifact.split_names = json.dumps(["test"])
    return artifact, triples


def evaluate(root: Path, name: str, examples_artifact, model, baseline, cfg: EvalConfig):
    """TFX's Evaluator executor with the project's EvalConfig: real metrics, validations, blessing."""
    evaluation, blessing = standard_artifacts.ModelEvaluation(), standard_artifacts.ModelBlessing()
    evaluation.uri, blessing.uri = str(root / name / "evaluation"), str(root / name / "blessing")
    inputs = {"examples": [examples_artifact], "model": [model]}
    if baseline is not None:
        inputs["baseline_model"] = [baseline]
    evaluator_executor.Executor().Do(
        inputs, {"evaluation": [evaluation], "blessing": [blessing]},
        {"eval_config": json_format.MessageToJson(create_eval_config(cfg)), "example_splits": json.dumps(["test"])})
    return evaluation, blessing


def tflite(root: Path, model, examples_artifact) -> TFLiteModels:
    """The real TFLiteExport: float32 ships, float16 fails its (impossible) 200 dB parity bound."""
    output = TFLiteModels()
    output.uri = str(root / "tflite")
    params = {"variants": json.dumps(["float32", "float16"]),
              "min_parity_psnr": json.dumps({"float32": 45.0, "float16": 200.0}),  # float16 cannot pass 200 dB
              "eval_split": "test", "max_eval_images": 2, "latency_height": 16, "latency_width": 16,
              "latency_runs": 1}
    TFLiteExecutor().Do({"model": [model], "examples": [examples_artifact]}, {"tflite_models": [output]}, params)
    return output


def ingest(root: Path) -> IngestReport:
    report = IngestReport()
    report.uri = str(root / "ingest")
    counts = {"files.seen": 15, "files.kept": 12, "files.rejected": 3, "examples.train": 4, "examples.eval": 1,
              "examples.test": 6, "rejects.undecodable": 2, "rejects.too_small": 1}
    ingest_report.write_summary(counts, IngestOptions(input_base=str(root / "photos")), report.uri)
    with open(os.path.join(report.uri, ingest_report.REJECTS_FILE), "w") as f:
        f.write(json.dumps({"path": "/photos/a<b>.jpg", "split": "train", "reason": "undecodable"}) + "\n")
    return report


def model_run(root: Path, history: dict | None = None, best_epoch: int = 2) -> standard_artifacts.ModelRun:
    """A Trainer model_run output holding history.json as trainer/entry.py writes it."""
    artifact = standard_artifacts.ModelRun()
    artifact.uri = str(root / "model_run")
    os.makedirs(artifact.uri, exist_ok=True)
    with open(os.path.join(artifact.uri, HISTORY_FILE), "w") as f:
        json.dump(history_record(history or HISTORY, best_epoch, 50, True), f)
    return artifact


def photos(root: Path) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """Full-size phone photos (one wider than a 512 px tile, so it is enhanced in tiles), a DSLR folder
    with a pixel-aligned photo for one of them and an other-sized one for another; and the phone
    pixels by file name as the files hold them."""
    phone_dir, dslr_dir = root / "full_size_test_images", root / "full_size_dslr"
    phone_dir.mkdir()
    dslr_dir.mkdir()
    wide, small = smooth_images(1, 40, 530, seed=1)[0], smooth_images(1, 60, 48, seed=2)[0]
    pixels = {}
    for name, image in (("0.png", wide), ("1.png", small)):
        Image.fromarray(np.round(image * 255).astype(np.uint8)).save(phone_dir / name)
        pixels[name] = np.asarray(Image.open(phone_dir / name), np.float32) / 255.0
    Image.fromarray(np.round(np.clip(wide * 1.1, 0, 1) * 255).astype(np.uint8)).save(dslr_dir / "0.png")
    other = np.round(smooth_images(1, 30, 20, seed=3)[0] * 255).astype(np.uint8)
    Image.fromarray(other).save(dslr_dir / "1.jpg")  # not pixel-aligned: another size
    (phone_dir / "notes.txt").write_text("not a photo")
    return phone_dir, dslr_dir, pixels


CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser") if shutil.which(name)), None)
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
# Appended to a copy of the page: after load, reports every image's decoded size and the spread of
# its pixels (drawn onto a 48x48 canvas), then moves the slider and reports the divider.
PROBE = """<script>window.addEventListener('load', () => {
  const out = {images: [], slider: null};
  for (const img of document.images) {
    const r = {alt: img.alt, complete: img.complete, w: img.naturalWidth, h: img.naturalHeight, std: -1, err: ''};
    try {
      const c = document.createElement('canvas'); c.width = 48; c.height = 48;
      const g = c.getContext('2d'); g.fillStyle = '#fff'; g.fillRect(0, 0, 48, 48); g.drawImage(img, 0, 0, 48, 48);
      const d = g.getImageData(0, 0, 48, 48).data; let s = 0, s2 = 0, n = 0;
      for (let i = 0; i < d.length; i += 4) { const y = (d[i] + d[i + 1] + d[i + 2]) / 3; s += y; s2 += y * y; n++; }
      r.std = Math.sqrt(Math.max(0, s2 / n - (s / n) ** 2));
    } catch (e) { r.err = String(e); }
    out.images.push(r);
  }
  const range = document.querySelector('.compare input');
  range.value = 20; range.dispatchEvent(new Event('input'));
  const after = range.parentNode.querySelector('img.after');
  out.slider = {pos: range.parentNode.style.getPropertyValue('--pos'), clip: getComputedStyle(after).clipPath};
  const pre = document.createElement('pre'); pre.id = 'probe'; pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});</script>"""


def chromium(tmp_path, *args: str) -> str:
    """Run headless Chromium with the flags that keep it off the network; its stdout (e.g. --dump-dom)."""
    done = subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          check=True, timeout=120, capture_output=True, text=True)
    return done.stdout

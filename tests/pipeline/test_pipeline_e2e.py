"""The whole local pipeline, for real, on tiny data: ingest -> TFDV -> Transform -> Trainer ->
Evaluator (TFMA) -> TFLite export -> push, three runs sharing one pipeline root and metadata store.

1. the real run_fn trains a tiny DPED for two steps: every artifact is produced and usable;
2. a fixed model that inverts the phone degradation: cached upstream, blessed, pushed with its
   TFLite files, except the variant whose parity bound cannot be met;
3. a fixed model that makes photos worse: not blessed, nothing new pushed.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from phone2dslr import config as config_lib
from phone2dslr.pipeline import local_runner, outputs
from tests.pipeline import fixed_models

pytestmark = pytest.mark.slow
PHONE = "testphone"
SIZE, PATCH = 32, 16


def _photo(rng: np.random.Generator) -> np.ndarray:
    """Smooth, photo-like content (SSIM and PSNR behave as on photos, unlike white noise)."""
    coarse = rng.random([5, 5, 3])
    img = Image.fromarray((coarse * 255).astype(np.uint8)).resize((SIZE, SIZE), Image.Resampling.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def _write_pair(root: Path, sub: str, n: int, rng: np.random.Generator) -> None:
    dslr = _photo(rng)
    phone = fixed_models.PHONE_GAIN * dslr + fixed_models.PHONE_OFFSET
    for side, img in ((PHONE, phone), ("canon", dslr)):
        path = root / PHONE / sub / side / f"{n}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("e2e")
    rng = np.random.default_rng(0)
    for n in range(12):
        _write_pair(tmp / "data", "training_data", n, rng)
    for n in range(4):
        _write_pair(tmp / "data", "test_data/patches", n, rng)
    cfg = config_lib.from_dict({
        "name": "e2e", "pipeline_root": str(tmp / "root"), "metadata_path": str(tmp / "mlmd.sqlite"),
        "serving_dir": str(tmp / "serving"),
        "data": {"root": str(tmp / "data"), "phone": PHONE, "patch_size": PATCH, "eval_percent": 25},
        "train": {"train_steps": 2, "checkpoint_every": 2, "eval_steps": 1, "batch_size": 2, "filters": 4,
                  "content": "pixel", "recipe": "rebalanced", "head": "conv1x1", "global_skip": True,
                  "pretrain_d_steps": 0, "log_images_every": 2},
        "export": {"variants": ["float32", "float16", "dynamic_int8"], "representative_samples": 4,
                   "min_parity_psnr": {"float32": 45.0, "float16": 500.0, "dynamic_int8": 25.0}},
    })
    results = {}
    for name, run_fn in (("trained", None), ("improving", "tests.pipeline.fixed_models.improving_run_fn"),
                         ("degrading", "tests.pipeline.fixed_models.degrading_run_fn")):
        code = local_runner.run(cfg, run_fn=run_fn)
        assert code == 0, name
        results[name] = {key: a for key, a in outputs.latest_artifacts(cfg).items()}
        results[name]["versions"] = sorted(os.listdir(cfg.serving_dir)) if os.path.isdir(cfg.serving_dir) else []
    return cfg, results


def _blessed(artifacts) -> bool:
    evaluation = artifacts["Evaluator", "evaluation"].uri
    return os.path.exists(os.path.join(os.path.dirname(os.path.dirname(evaluation)), "blessing",
                                       os.path.basename(evaluation), "BLESSED"))


def test_trained_run_produces_every_artifact(runs):
    import tensorflow as tf

    _, results = runs
    a = results["trained"]
    for split in ("train", "eval", "test"):
        assert list(Path(a["ImageExampleGen", "examples"].uri, f"Split-{split}").glob("*.gz")), split
    summary = json.loads(Path(a["ImageExampleGen", "ingest_report"].uri, "summary.json").read_text())
    assert summary["examples"]["test"] == 4 * (SIZE // PATCH) ** 2
    model_dir = os.path.join(a["Trainer", "model"].uri, "Format-Serving")
    loaded = tf.saved_model.load(model_dir)
    assert {"serving_default", "transform_features", "enhance_image", "enhance_bytes"} <= set(loaded.signatures)
    out = loaded.signatures["enhance_image"](image=tf.zeros([1, 20, 28, 3]))["enhanced"]
    assert out.shape == (1, 20, 28, 3)
    assert list(Path(a["Trainer", "model_run"].uri).rglob("events.out.tfevents*"))
    metrics = outputs.overall_metrics(a["Evaluator", "evaluation"].uri)
    assert {"psnr", "ssim", "psnr_gain", "ssim_gain", "input_psnr", "input_ssim"} <= set(metrics)


def test_improving_model_is_blessed_and_pushed_with_tflite(runs):
    from phone2dslr.export import tflite_checks

    cfg, results = runs
    a = results["improving"]
    # upstream components were reused from the first run's cache
    assert a["ImageExampleGen", "examples"].id == results["trained"]["ImageExampleGen", "examples"].id
    assert a["Transform", "transform_graph"].id == results["trained"]["Transform", "transform_graph"].id
    assert _blessed(a)
    metrics = outputs.overall_metrics(a["Evaluator", "evaluation"].uri)
    assert metrics["psnr_gain"] > 10 and metrics["psnr"] > metrics["input_psnr"] + 10
    pushed = a["ModelPusher", "pushed_model"]
    destination = Path(pushed.custom_properties["pushed_destination"].string_value)
    assert destination.parent == Path(cfg.serving_dir) and (destination / "saved_model.pb").exists()
    shipped = sorted(p.name for p in (destination / "tflite").glob("*.tflite"))
    assert shipped == ["dynamic_int8.tflite", "float32.tflite"]  # float16's parity bound cannot be met
    checks = json.loads((destination / "tflite" / tflite_checks.RESULTS_FILE).read_text())
    assert not checks["variants"]["float16"]["passed"] and "below the bound" in checks["variants"]["float16"]["reason"]
    assert checks["variants"]["float32"]["psnr"] > checks["reference"]["phone_input"]["psnr"] + 10
    page = Path(a["RunReport", "report"].uri, "index.html").read_text()
    assert "NOT BLESSED" not in page and "BLESSED" in page and "float16" in page


def test_degrading_model_is_not_blessed_and_not_pushed(runs):
    _, results = runs
    a = results["degrading"]
    assert not _blessed(a)
    assert a["ModelPusher", "pushed_model"].custom_properties["pushed"].int_value == 0
    assert results["degrading"]["versions"] == results["improving"]["versions"]
    page = Path(a["RunReport", "report"].uri, "index.html").read_text()
    assert "NOT BLESSED" in page and "psnr_gain" in page
    assert len(results["improving"]["versions"]) == len(results["trained"]["versions"]) + 1

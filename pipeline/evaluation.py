"""The TFMA EvalConfig: PSNR, pooled PSNR, SSIM, MS-SSIM per slice, what the model adds, and the gate.

Blessing needs both:
- absolute: PSNR and SSIM gains over the untouched phone input at least `min_*_gain`
  (a model must improve on doing nothing);
- relative: PSNR and SSIM no worse than the latest blessed model by more than the tolerance.
Pooled PSNR and MS-SSIM (the numbers DPED and the PIRM 2018 challenge report) are recorded beside
them without thresholds: the gate stays on the per-image gains, which the TFLite export repeats.
Metric classes come from trainer/metrics.py, the definitions the trainer logs, so the numbers in
TensorBoard, the Evaluator and the TFLite checks agree. The new metrics get their names in the
config (TFMA would snake-case MSSSIM to "msssim"); the older ones keep TFMA's default names
(psnr, ssim, psnr_gain, ssim_gain, input_psnr, input_ssim) that earlier evaluations stored.
"""
from __future__ import annotations

import json

import tensorflow_model_analysis as tfma

from phone2dslr.trainer.serving import OUTPUT_KEY, STACKED_KEY, TRANSFORM_SIGNATURE
from phone2dslr.config import EvalConfig
from phone2dslr.trainer.preprocessing import DSLR, SOURCE

METRICS_MODULE = "phone2dslr.trainer.metrics"


def _metric(class_name: str, threshold: tfma.MetricThreshold | None = None, name: str = "") -> tfma.MetricConfig:
    config = json.dumps({"name": name}) if name else ""
    return tfma.MetricConfig(class_name=class_name, module=METRICS_MODULE, threshold=threshold, config=config)


def _no_worse_than_baseline(tolerance: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(change_threshold=tfma.GenericChangeThreshold(
        direction=tfma.MetricDirection.HIGHER_IS_BETTER, absolute={"value": -abs(tolerance)}))


def _at_least(value: float) -> tfma.MetricThreshold:
    return tfma.MetricThreshold(value_threshold=tfma.GenericValueThreshold(lower_bound={"value": value}))


def create_eval_config(cfg: EvalConfig) -> tfma.EvalConfig:
    """Slices: overall and per phone (`source`); thresholds from the config section."""
    model_spec = tfma.ModelSpec(
        signature_name="serving_default",
        preprocessing_function_names=[TRANSFORM_SIGNATURE],
        label_keys={OUTPUT_KEY: DSLR, STACKED_KEY: DSLR},
    )
    return tfma.EvalConfig(
        model_specs=[model_spec],
        slicing_specs=[tfma.SlicingSpec(), tfma.SlicingSpec(feature_keys=[SOURCE])],
        metrics_specs=[
            tfma.MetricsSpec(output_names=[OUTPUT_KEY], metrics=[
                _metric("PSNR", _no_worse_than_baseline(cfg.max_psnr_drop_vs_baseline)),
                _metric("SSIM", _no_worse_than_baseline(cfg.max_ssim_drop_vs_baseline)),
                _metric("PooledPSNR", name="psnr_pooled"),
                _metric("MSSSIM", name="ms_ssim"),
            ]),
            tfma.MetricsSpec(output_names=[STACKED_KEY], metrics=[
                _metric("PSNRGain", _at_least(cfg.min_psnr_gain)),
                _metric("SSIMGain", _at_least(cfg.min_ssim_gain)),
                _metric("InputPSNR"),
                _metric("InputSSIM"),
                _metric("PooledPSNRGain", name="psnr_pooled_gain"),
                _metric("InputPooledPSNR", name="psnr_pooled_input"),
                _metric("MSSSIMGain", name="ms_ssim_gain"),
                _metric("InputMSSSIM", name="ms_ssim_input"),
            ]),
        ],
    )

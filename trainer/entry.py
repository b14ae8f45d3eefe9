"""TFX Trainer entry point: `run_fn`, named by module path as `phone2dslr.trainer.entry.run_fn`.

It rebuilds the typed config from custom_config, picks the tf.distribute strategy, trains the
configured method with Keras `fit` (checkpoints for resume, NaN guard, TensorBoard scalars and
image summaries), and exports the generator with the serving signatures of export/saved_model.py.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import phone2dslr    # noqa: F401  (Keras/TF environment first)
import tensorflow as tf
import tensorflow_transform as tft
import tf_keras as keras

from phone2dslr.trainer.serving import export_generator
from phone2dslr.config import DataConfig, TrainConfig, section_from_dict
from phone2dslr.trainer import data, distribute, fitting, models, precision, recipes


HISTORY_FILE = "history.json"  # per-epoch Keras history beside final_metrics.json in model_run_dir


class TrainingDataError(ValueError):
    """The splits handed to the Trainer cannot feed training (one line, says which)."""


def _backup_dir(train: TrainConfig, data_cfg: DataConfig) -> str:
    """Resume only into the same setup: the backup folder is keyed by the configs' hash."""
    key = json.dumps({"train": {k: v for k, v in vars(train).items() if k != "backup_dir"},
                      "data": vars(data_cfg)}, sort_keys=True)
    return os.path.join(train.backup_dir, f"{train.model}-{hashlib.sha256(key.encode()).hexdigest()[:12]}")


def train_and_export(
    train: TrainConfig,
    data_cfg: DataConfig,
    train_files: list[str],
    eval_files: list[str],
    transform_output_dir: str,
    serving_model_dir: str,
    model_run_dir: str,
    train_steps: int,
    eval_steps: int,
) -> dict[str, Any]:
    """Train and export; usable with or without TFX (tests and benchmarks call it directly)."""
    keras.utils.set_random_seed(train.seed)
    tf_transform_output = tft.TFTransformOutput(transform_output_dir)
    raw_spec = tf_transform_output.raw_feature_spec()
    tft_layer = tf_transform_output.transform_features_layer()

    def transform(raw: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        return tft_layer(raw)

    strategy = distribute.make_strategy(train.strategy)
    n_replicas = strategy.num_replicas_in_sync
    recipe, overrides = recipes.resolve(train)
    print(f"[{train.model}] {recipes.describe(recipe, overrides)}", flush=True)
    global_batch = recipe.batch_size * n_replicas
    print(f"[{train.model}] {n_replicas} replica(s) ({train.strategy}), global batch {global_batch}, "
          f"precision {train.precision}{', XLA' if train.jit_compile else ''}"
          f"{', input cached in memory' if train.input_cache else ''}", flush=True)
    if train.model == "wespe":
        train_ds = data.unpaired_dataset(train_files, raw_spec, transform, global_batch, seed=train.seed,
                                         cache=train.input_cache)
    else:  # batches_per_step 2: DPED's official code draws a second batch for its discriminator step
        train_ds = data.paired_dataset(train_files, raw_spec, transform, global_batch * recipe.batches_per_step,
                                       shuffle=True, repeat=True, seed=train.seed, cache=train.input_cache)
    n_eval = data.count_pairs(eval_files, raw_spec)
    eval_batch = max(1, min(global_batch, n_eval))
    eval_ds = data.paired_dataset(eval_files, raw_spec, transform, eval_batch, shuffle=False, repeat=True)
    eval_steps = max(1, min(eval_steps, n_eval // eval_batch)) if n_eval else 0

    try:
        image_batch = next(iter(eval_ds.take(1))) if n_eval else next(iter(train_ds.take(1)))
    except (StopIteration, tf.errors.OutOfRangeError):
        # An unpaired stream with no image of one side (e.g. the eval split took the only DSLR
        # scene) ends at once; say which split is short instead of TensorFlow's end-of-sequence.
        what = "phone or no DSLR images" if train.model == "wespe" else "phone/DSLR pairs"
        raise TrainingDataError(f"the train split has no {what} to train on; check the data layout "
                                "and data.eval_percent (the ingest summary lists each split)") from None
    with strategy.scope():
        model = models.create_model(train, patch_size=data_cfg.patch_size)
        model(image_batch["phone"][:1])  # built before fit, so BackupAndRestore can restore into it

    is_chief = distribute.is_chief(strategy)
    log_dir = model_run_dir if is_chief else tempfile.mkdtemp(prefix="worker_logs_")
    history = fitting.fit(
        model, train_ds, eval_ds if eval_steps else None, train_steps=train_steps, eval_steps=eval_steps,
        checkpoint_every=train.checkpoint_every, backup_dir=_backup_dir(train, data_cfg), log_dir=log_dir,
        image_batch=image_batch, log_images_every=train.log_images_every, keep_best=train.keep_best)
    export_dir = serving_model_dir if is_chief else tempfile.mkdtemp(prefix="worker_export_")
    # In float32 whatever train.precision was: serving, TFMA and the TFLite export see one network.
    export_generator(precision.float32_model(model.exported_generator), export_dir, tft_layer, raw_spec)
    logged = history.history  # every epoch of the run, also those before a resume
    epoch = history.best_epoch  # the epoch whose weights were exported (the last one without keep_best)
    final = {k: float(v[epoch]) for k, v in logged.items()}
    final["epoch"] = float(epoch + 1)
    if is_chief:
        with tf.io.gfile.GFile(os.path.join(model_run_dir, "final_metrics.json"), "w") as f:
            json.dump(final, f, indent=2, sort_keys=True)
        with tf.io.gfile.GFile(os.path.join(model_run_dir, HISTORY_FILE), "w") as f:
            json.dump(history_record(logged, epoch + 1, min(train_steps, train.checkpoint_every), train.keep_best,
                                     recipes.as_dict(recipe, overrides)), f, indent=1, sort_keys=True)
    return final


def history_record(logged: dict[str, list[Any]], best_epoch: int, steps_per_epoch: int,
                   keep_best: bool, recipe: dict[str, Any] | None = None) -> dict[str, Any]:
    """What history.json holds for the run report's training curves (components/run_report/curves.py).

    history: Keras `History.history`, every logged name -> one float per epoch (after a resume,
    the epochs run since); best_epoch: 1-based, the epoch whose weights were exported (the last
    one unless keep_best chose another); steps_per_epoch: training steps per epoch (the last
    epoch may be shorter); recipe: the effective recipe (recipes.as_dict), which the report states.
    NaN and inf are written as JSON's NaN / Infinity, which Python reads.
    """
    return {"history": {k: [float(v) for v in values] for k, values in logged.items()},
            "best_epoch": int(best_epoch), "steps_per_epoch": int(steps_per_epoch), "keep_best": bool(keep_best),
            "recipe": dict(recipe or {})}


def run_fn(fn_args: Any) -> None:
    """TFX Trainer hook: fn_args carries files, steps, output dirs and our custom_config."""
    custom = fn_args.custom_config or {}
    train = section_from_dict(TrainConfig, custom["train"])
    data_cfg = section_from_dict(DataConfig, custom["data"])
    final = train_and_export(
        train, data_cfg, fn_args.train_files, fn_args.eval_files, fn_args.transform_output,
        fn_args.serving_model_dir, fn_args.model_run_dir, fn_args.train_steps, fn_args.eval_steps)
    summary = ", ".join(f"{k}={v:.4g}" for k, v in sorted(final.items()) if k.startswith("val_")) \
        or "none (the eval split holds no phone/DSLR pairs; the Evaluator judges on the test split)"
    print(f"[{train.model}] finished {fn_args.train_steps} steps; validation: {summary}", flush=True)

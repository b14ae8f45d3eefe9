"""Tiny real DPED training in a process of its own, for the multi-worker and kill-and-resume tests.

    python -m tests.trainer.fit_script --out DIR --backup-dir DIR [--strategy default|mirrored|multi_worker]
        [--steps 6] [--checkpoint-every 2] [--sleep 0.0] [--recipe NAME] [--per-replica-batch 2]
        [--logical-cpus N] [--precision float32]

Builds trainer.models.create_model(TrainConfig(model dped, content pixel, filters 4, batch 2,
augment off)) for 16x16 patches inside the strategy's scope and trains it with trainer.fitting.fit
(BackupAndRestore every --checkpoint-every steps, NaN guard) on a deterministic synthetic dataset.

Data: every process builds the same dataset (a fixed list of 8 pairs, repeated), batched at the
global batch (2 per replica); under multi_worker tf.distribute shards it by element (DATA policy),
so each worker trains on its own half of every global batch, and gradients are all-reduced.

Writes to --out (per task, `<task>` = worker index, 0 without TF_CONFIG):
- `steps-<task>.jsonl`: one line per finished batch: the fit loop's global step (epoch x
  steps_per_epoch + batch + 1), both optimizers' `iterations`, and a "begin" line at the start of
  training (after BackupAndRestore has restored) with the restored iterations;
- `final-<task>.npz`: the generator's weights at the end (`w0`, `w1`, ...) and `initial-<task>.npz`
  with the weights before training (only when no backup existed, i.e. a fresh start).
--sleep adds a pause after every batch, so a test can kill the process between two backups;
--pairs 2 (= the batch) makes every step see the same batch, so a resumed run can be compared step
for step with the run it resumes (`g_state`, `d_state`, `weights` fingerprints in each line).
--logical-cpus N splits the CPU into N logical devices before TensorFlow starts, so `mirrored`
trains N replicas on one CPU; `strategy-<task>.json` records the replicas and devices.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import phone2dslr    # noqa: F401  (TF_USE_LEGACY_KERAS before TensorFlow)

import numpy as np
import tensorflow as tf
import tf_keras as keras

from phone2dslr.config import TrainConfig
from phone2dslr.trainer import distribute, fitting, models

PATCH = 16
PER_REPLICA_BATCH = 2


def synthetic_pairs(n: int = 8, size: int = PATCH, seed: int = 0) -> dict[str, np.ndarray]:
    """n smooth 'DSLR' patches and darker, noisy 'phone' versions, the same on every call."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    dslr = np.stack([
        np.stack([0.5 + 0.4 * np.sin((3 + i) * xx + k) * np.cos((2 + i) * yy - k) for k in range(3)], -1)
        for i in range(n)]).astype(np.float32)
    phone = np.clip(0.7 * dslr + 0.05 + rng.normal(0, 0.04, dslr.shape), 0, 1).astype(np.float32)
    return {"phone": phone, "dslr": dslr}


def synthetic_dataset(global_batch: int, pairs: int = 8) -> tf.data.Dataset:
    ds = tf.data.Dataset.from_tensor_slices(synthetic_pairs(pairs)).repeat().batch(global_batch, drop_remainder=True)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return ds.with_options(options)


class StepRecorder(keras.callbacks.Callback):
    """Appends the fit loop's global step and both optimizers' iterations to a JSON-lines file."""

    def __init__(self, path: str, steps_per_epoch: int, sleep: float = 0.0):
        super().__init__()
        self.path, self.steps_per_epoch, self.sleep = path, steps_per_epoch, sleep
        self.epoch = 0

    def _write(self, **record) -> None:
        def total(variables) -> float:
            return float(sum(tf.reduce_sum(tf.abs(tf.cast(v, tf.float64))) for v in variables))

        g_opt, d_opt = self.model.g_optimizer, self.model.d_optimizer
        record.update(pid=os.getpid(), g_iterations=int(keras.backend.get_value(g_opt.iterations)),
                      d_iterations=int(keras.backend.get_value(d_opt.iterations)),
                      # fingerprints: sum of |x| over Adam's moments (not its step counter), and over
                      # all the model's weights (with the discriminator's batch-norm statistics)
                      g_state=total(v for v in g_opt.variables if v is not g_opt.iterations),
                      d_state=total(v for v in d_opt.variables if v is not d_opt.iterations),
                      weights=total(self.model.weights))
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")

    def on_train_begin(self, logs=None):
        self._write(event="begin")  # after BackupAndRestore.on_train_begin: the restored state

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._write(event="batch", step=self.epoch * self.steps_per_epoch + batch + 1)
        if self.sleep:
            time.sleep(self.sleep)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--backup-dir", required=True)
    parser.add_argument("--strategy", default="default", choices=["default", "mirrored", "multi_worker"])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--checkpoint-every", type=int, default=2)
    parser.add_argument("--sleep", type=float, default=0.0)
    parser.add_argument("--pairs", type=int, default=8, help="distinct pairs in the dataset (cycled)")
    parser.add_argument("--recipe", default="", help="DPED recipe (default: the model's)")
    parser.add_argument("--per-replica-batch", type=int, default=PER_REPLICA_BATCH)
    parser.add_argument("--logical-cpus", type=int, default=0, help="split the CPU into N logical devices")
    parser.add_argument("--precision", default="float32")
    args = parser.parse_args(argv)
    if args.logical_cpus:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * args.logical_cpus)

    keras.utils.set_random_seed(0)  # same initial weights in every process
    strategy = distribute.make_strategy(args.strategy)
    task = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}").get("task", {}).get("index", 0)
    cfg = TrainConfig(model="dped", recipe=args.recipe, content="pixel", filters=4,
                      batch_size=args.per_replica_batch, augment=False, train_steps=args.steps,
                      checkpoint_every=args.checkpoint_every, precision=args.precision)
    with strategy.scope():
        model = models.create_model(cfg, patch_size=PATCH)
        model(tf.zeros([1, PATCH, PATCH, 3]))  # built, so BackupAndRestore restores into it
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"strategy-{task}.json"), "w", encoding="utf-8") as f:
        default = strategy is tf.distribute.get_strategy()  # has no worker_devices
        json.dump({"replicas": strategy.num_replicas_in_sync,
                   "devices": [] if default else list(strategy.extended.worker_devices)}, f)
    fresh = not tf.io.gfile.glob(os.path.join(args.backup_dir, "*", "checkpoint"))
    if fresh:
        np.savez(os.path.join(args.out, f"initial-{task}.npz"), *model.generator.get_weights())
    recorder = StepRecorder(os.path.join(args.out, f"steps-{task}.jsonl"),
                            min(args.steps, args.checkpoint_every), args.sleep)
    fitting.fit(model, synthetic_dataset(cfg.batch_size * strategy.num_replicas_in_sync, args.pairs), None,
                train_steps=args.steps, eval_steps=0, checkpoint_every=args.checkpoint_every,
                backup_dir=args.backup_dir, extra_callbacks=[recorder], verbose=0)
    np.savez(os.path.join(args.out, f"final-{task}.npz"), *model.generator.get_weights())


if __name__ == "__main__":
    main()

"""Pick the tf.distribute strategy the config names.

Keras 2 (tf_keras) `fit` runs unchanged under all three; Keras 3 `fit` fails under
MultiWorkerMirroredStrategy here, which is one reason the project trains with tf_keras.
"""
from __future__ import annotations

import json
import os

import tensorflow as tf


class StrategyError(ValueError):
    """The configured strategy cannot run in this environment."""


def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: one device; mirrored: one replica per visible GPU (data parallel, gradients
    all-reduced every step; the trainer scales the global batch by the replicas), or without GPUs
    one per logical CPU device (one unless configured, which is how CI runs this code path);
    multi_worker: from TF_CONFIG. Raises StrategyError."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        if tf.config.list_logical_devices("GPU"):
            return tf.distribute.MirroredStrategy()  # all visible GPUs (CUDA_VISIBLE_DEVICES picks)
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")])
    if name == "multi_worker":
        tf_config = json.loads(os.environ.get("TF_CONFIG", "{}") or "{}")
        if not tf_config.get("cluster", {}).get("worker"):
            raise StrategyError("train.strategy multi_worker needs TF_CONFIG with a cluster.worker list "
                                "(set by the cluster, or by hand for a local test)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise StrategyError(f"unknown strategy {name!r}; choose default, mirrored or multi_worker")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Only the chief writes the exported model and summaries; other workers write to scratch."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (task_type == "worker" and task_id == 0 and
                                    "chief" not in resolver.cluster_spec().as_dict())

"""Models by name: `create_model(train_cfg)` builds and compiles DPED or WESPE (train_cfg.model).

Every model is a keras.Model subclass whose trained generator is `model.generator`, a functional
keras.Model from [None, None, None, 3] images in [0, 1] to enhanced images (clip to [0, 1] to serve).
Batches are dicts {"phone": float32 [B, H, W, 3] in [0, 1], "dslr": same}.
"""
from __future__ import annotations

import tf_keras as keras

from phone2dslr.trainer import dped, wespe

MODELS = {"dped": dped.create_model, "wespe": wespe.create_model}


def create_model(train_cfg, patch_size: int = dped.DEFAULT_PATCH_SIZE) -> keras.Model:
    """Built and compiled model for train_cfg.model; patch_size sizes the DPED and WESPE-paper discriminators."""
    if train_cfg.model == "dped":
        return dped.create_model(train_cfg, patch_size=patch_size)
    if train_cfg.model == "wespe":
        return wespe.create_model(train_cfg, patch_size=patch_size)
    raise ValueError(f"train.model {train_cfg.model!r} is not one of {', '.join(MODELS)}")

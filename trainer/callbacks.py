"""Training callbacks."""
from __future__ import annotations

import logging
import math

import tf_keras as keras


class TrainingDivergedError(RuntimeError):
    """A training loss became NaN or infinite."""


class NaNGuard(keras.callbacks.Callback):
    """Stop training at the first batch whose logged losses are not finite.

    Checks every log entry whose name ends in `suffix` ("loss" by default: g_loss, d_loss, ...).
    Sets `model.stop_training`, records `diverged` (step, name, value) where step is the global
    training step (the optimizer's `iterations`, so it stays right after a resume), and by default raises
    TrainingDivergedError with a one-line message, so a run ends visibly instead of training on
    NaNs; with raise_error=False, fit() returns and the caller checks `guard.diverged`.
    """

    def __init__(self, suffix: str = "loss", raise_error: bool = True):
        super().__init__()
        self.suffix = suffix
        self.raise_error = raise_error
        self.diverged: tuple[int, str, float] | None = None
        self._step = 0

    def on_train_begin(self, logs=None):
        self.diverged = None

    def _global_step(self) -> int:
        """The optimizer's step counter (it survives a resume from a backup); else batches seen here."""
        iterations = getattr(getattr(self.model, "optimizer", None), "iterations", None)
        return int(keras.backend.get_value(iterations)) if iterations is not None else self._step

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        for name, value in (logs or {}).items():
            if not name.endswith(self.suffix):
                continue
            value = float(value)
            if not math.isfinite(value):
                step = self._global_step()
                self.diverged = (step, name, value)
                self.model.stop_training = True
                message = (f"training diverged: {name} = {value} at step {step} "
                           f"(batch {batch} of this epoch); lower the learning rate or check the loss weights")
                if self.raise_error:
                    raise TrainingDivergedError(message)
                logging.getLogger(__name__).error(message)
                return

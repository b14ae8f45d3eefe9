"""DPED and WESPE in Keras, their shared parts, and the TFX Trainer entry (run_fn)."""

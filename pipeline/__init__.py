"""Pipeline definition (one factory), config, local runner and the CLI."""
import os

# TFX 1.21, TFMA custom metrics and multi-worker training all need Keras 2 (tf_keras); TFX's own
# containers set this too. Set before TensorFlow is imported anywhere in the process.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

"""One YAML file, mapped onto typed dataclasses, drives every runner.

Library code receives the parts it needs as arguments; only entry points (CLI, runners) load
files. Unknown keys and wrong types are errors, so a typo in a config never silently falls back to
a default.
"""
from __future__ import annotations

import dataclasses
import os
import typing
from dataclasses import dataclass, field
from typing import Any

import yaml


class ConfigError(ValueError):
    """A config file or value that cannot be used; the message is one line a user can act on."""


@dataclass
class DataConfig:
    """Where the photos are and how the image ExampleGen turns them into examples."""

    root: str = "demo_data"
    layout: str = "dped"  # dped: <root>/<phone>/training_data|test_data ; unpaired: trainA/trainB/testA/testB
    phone: str = "iphone"  # DPED phone folder name (also the slice value of phone examples)
    pairing: str = "paired"  # paired: phone+DSLR in one example ; unpaired: one example per image
    patch_size: int = 100  # square patches cut from every split (test: non-overlapping grid)
    patch_stride: int = 0  # grid stride; 0 means patch_size (no overlap)
    patches_per_image: int = 0  # >0: that many seeded random patches per image instead of the grid
    eval_percent: int = 10  # share of training scenes/photos (by hash of their id; photos.csv) held out as eval
    max_reject_fraction: float = 0.5  # fail the run when more of the input than this is set aside
    seed: int = 0
    recursive: bool = False  # also read images in sub-folders of the layout folders (else listed as ignored)
    demo_dir: str = ""  # when set, the embedded demo dataset is generated there if missing


@dataclass
class TrainConfig:
    """What to train and how; model-specific hyperparameters live in trainer/."""

    model: str = "dped"  # dped | wespe
    train_steps: int = 200
    eval_steps: int = 10
    recipe: str = ""  # the model's training recipe (see RECIPES); empty: the model's default
    batch_size: int = 0  # patches per step and replica; 0: the recipe's
    learning_rate: float = 0.0  # Adam step size; 0: the recipe's
    strategy: str = "default"  # default | mirrored | multi_worker
    checkpoint_every: int = 50  # also the epoch length: validation and checkpoints every N steps
    keep_best: bool = True  # export the weights of the epoch with the best validation PSNR
    log_images_every: int = 100
    loss_weights: dict[str, float] = field(default_factory=dict)  # explicit weights override the recipe's
    content: str = "vgg19"  # vgg19 | pixel (pixel needs no pretrained network)
    vgg_weights: str = ""  # local imagenet-vgg-verydeep-19.mat, Keras .h5 weights file or TF-Hub module directory
    head: str = ""  # generator output head: tanh | conv1x1; empty: the recipe's
    global_skip: bool = False  # generator predicts a correction added to the input (not in the papers)
    filters: int = 64
    augment: bool = True
    pretrain_d_steps: int = -1  # D-only steps first (recipes that have them); -1: the recipe's
    jit_compile: bool = False
    precision: str = "float32"  # float32 | mixed_bfloat16 | mixed_float16 (Keras policy, trainer/precision.py)
    input_cache: bool = False  # hold the training records in host memory after the first pass (trainer/data.py)
    backup_dir: str = ""  # checkpoints for resume; empty: <pipeline_root>/trainer_backup
    seed: int = 0


@dataclass
class EvalConfig:
    """Blessing thresholds for the Evaluator (absolute and against the baseline)."""

    min_psnr_gain: float = 0.0  # candidate PSNR must be at least the phone input's PSNR + this
    min_ssim_gain: float = 0.0
    max_psnr_drop_vs_baseline: float = 0.5  # dB the candidate may lose against the last blessed model
    max_ssim_drop_vs_baseline: float = 0.01


@dataclass
class ExportConfig:
    """TFLite variants to build, how much drift against the SavedModel each may show, and the model
    metadata written into every shipped file (export/tflite_metadata.py)."""

    variants: list[str] = field(default_factory=lambda: ["float32", "float16", "dynamic_int8", "int8", "fixed"])
    min_parity_psnr: dict[str, float] = field(
        default_factory=lambda: {"float32": 45.0, "float16": 40.0, "dynamic_int8": 30.0, "int8": 28.0, "fixed": 40.0}
    )
    representative_samples: int = 16  # int8 calibration patches drawn from the train split
    max_eval_images: int = 256  # held-out patches each variant is checked on (parity and quality)
    fixed_tile: int = 512  # input side of the `fixed` variant ([1, T, T, 3], for the GPU delegate / NNAPI)
    author: str = "phone2dslr"  # metadata: who made the model
    license: str = ""  # metadata: the licence of the weights ("" is written as "unspecified")


@dataclass
class KubeflowConfig:
    """Cluster settings; used only by kubeflow/."""

    image: str = "gcr.io/my-project/phone2dslr:latest"
    target: str = "kfp"  # kfp (open-source Kubeflow Pipelines) | vertex
    gpu_count: int = 0  # GPUs on the Trainer step (on each replica with multi_worker on vertex)
    gpu_type: str = "nvidia-tesla-t4"  # vertex accelerator type (NVIDIA_TESLA_T4, NVIDIA_L4...); kfp: see node_selector
    cpu_limit: float = 0.0  # vCPUs of the Trainer step; 0: the cluster's default
    memory_limit_gb: float = 0.0  # memory (GB) of the Trainer step; 0: the cluster's default
    gpu_resource: str = "nvidia.com/gpu"  # kfp: Kubernetes resource requested gpu_count times
    node_selector: dict[str, str] = field(default_factory=dict)  # kfp: Trainer pod node labels (GPU model)
    project: str = ""  # vertex: GCP project that runs the pipeline
    region: str = "us-central1"  # vertex: region
    service_account: str = ""  # runs as this account (Kubernetes on kfp, GCP on vertex); empty: default
    namespace: str = ""  # kfp: profile namespace on a multi-user Kubeflow (credentials never go here)
    workers: int = 2  # vertex + train.strategy multi_worker: replicas of the Vertex training job
    machine_type: str = "n1-standard-8"  # vertex + multi_worker: machine of each replica


@dataclass
class PipelineConfig:
    """The whole run: names, roots, Beam arguments and the sections above."""

    name: str = "phone2dslr"
    pipeline_root: str = "runs/pipeline_root"
    metadata_path: str = "runs/metadata.sqlite"
    serving_dir: str = "runs/serving"
    beam_pipeline_args: list[str] = field(
        default_factory=lambda: ["--runner=FnApiRunner", "--direct_running_mode=in_memory"]
    )
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    kubeflow: KubeflowConfig = field(default_factory=KubeflowConfig)


# Training recipes per model (trainer/recipes.py registers them; a test keeps the two lists equal).
# Listed here too so a config names a real recipe before any TensorFlow loads.
RECIPES: dict[str, tuple[str, ...]] = {
    "dped": ("official-code", "paper", "rebalanced", "demo"),
    "wespe": ("paper", "wespe-keras", "demo"),
}

_CHOICES = {
    ("data", "layout"): ("dped", "unpaired"),
    ("data", "pairing"): ("paired", "unpaired"),
    ("train", "model"): ("dped", "wespe"),
    ("train", "strategy"): ("default", "mirrored", "multi_worker"),
    ("train", "precision"): ("float32", "mixed_bfloat16", "mixed_float16"),
    ("train", "content"): ("vgg19", "pixel"),
    ("train", "head"): ("", "tanh", "conv1x1"),
    ("kubeflow", "target"): ("kfp", "vertex"),
}


def _check_type(value: Any, hint: Any, where: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (list,):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        (item,) = typing.get_args(hint)
        return [_check_type(v, item, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin in (dict,):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        _, item = typing.get_args(hint)
        return {str(k): _check_type(v, item, f"{where}.{k}") for k, v in value.items()}
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        # YAML 1.1 reads `1e-4` (no dot) as a string; accept what Python reads as a number.
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where}: expected float, got {value!r}") from None
    if hint in (int, float, str, bool):
        if not isinstance(value, hint) or (hint is int and isinstance(value, bool)):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported type {hint}")  # pragma: no cover


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where or 'config'}: expected a mapping, got {raw!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - names)
    if cls is TrainConfig and "loss_preset" in unknown:
        raise ConfigError("train.loss_preset was replaced by train.recipe (a complete training recipe: "
                          "dped official-code | paper | rebalanced | demo); explicit weights go in "
                          "train.loss_weights")
    if unknown:
        raise ConfigError(f"{where or 'config'}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in raw.items():
        hint = hints[name]
        key = f"{where}.{name}" if where else name
        if dataclasses.is_dataclass(hint):
            kwargs[name] = _build(hint, value, key)
        else:
            kwargs[name] = _check_type(value, hint, key)
    return cls(**kwargs)


def validate(config: PipelineConfig) -> PipelineConfig:
    """Check value ranges and choices that types alone cannot express."""
    for (section, name), allowed in _CHOICES.items():
        value = getattr(getattr(config, section), name)
        if value not in allowed:
            raise ConfigError(f"{section}.{name}: {value!r} is not one of {', '.join(allowed)}")
    d, t = config.data, config.train
    if d.patch_size < 0 or d.patch_stride < 0 or d.patches_per_image < 0:
        raise ConfigError("data.patch_size, patch_stride and patches_per_image must be >= 0")
    if not 0 <= d.eval_percent < 100:
        raise ConfigError(f"data.eval_percent: {d.eval_percent} must be in [0, 100)")
    if not 0.0 <= d.max_reject_fraction <= 1.0:
        raise ConfigError(f"data.max_reject_fraction: {d.max_reject_fraction} must be in [0, 1]")
    for name in ("train_steps", "eval_steps", "checkpoint_every", "filters"):
        if getattr(t, name) <= 0:
            raise ConfigError(f"train.{name}: must be > 0, got {getattr(t, name)}")
    if t.batch_size < 0:
        raise ConfigError(f"train.batch_size: must be > 0 (or 0 for the recipe's), got {t.batch_size}")
    if t.recipe and t.recipe not in RECIPES[t.model]:
        raise ConfigError(f"train.recipe: {t.recipe!r} is not a {t.model} recipe; choose one of "
                          f"{', '.join(RECIPES[t.model])}")
    if t.global_skip and t.head != "conv1x1":
        raise ConfigError("train.global_skip needs head: conv1x1 (set it explicitly)")
    if d.patch_size == 0:
        raise ConfigError("data.patch_size: the Trainer batches fixed-size patches; set a size > 0 "
                          "(DPED patches are 100)")
    if t.pretrain_d_steps < -1:
        raise ConfigError(f"train.pretrain_d_steps: must be >= 0 (or -1 for the recipe's), got {t.pretrain_d_steps}")
    if t.learning_rate < 0:
        raise ConfigError(f"train.learning_rate: must be > 0 (or 0 for the recipe's), got {t.learning_rate}")
    if t.content == "vgg19" and not t.vgg_weights:
        raise ConfigError("train.vgg_weights: content 'vgg19' needs a local weights file or Hub module "
                          "(nothing is downloaded); set it, or choose content: pixel")
    return config


def from_dict(raw: dict[str, Any]) -> PipelineConfig:
    """Build and validate a config from a plain mapping (as read from YAML)."""
    return validate(_build(PipelineConfig, raw, ""))


def load(path: str | os.PathLike[str], overrides: list[str] | None = None) -> PipelineConfig:
    """Read a YAML config; relative paths in it are taken relative to the current directory.

    `overrides` are `section.key=value` strings (value parsed as YAML), applied before validation,
    so a CLI flag can change one value without copying the file.
    """
    try:
        with open(path, encoding="utf-8") as f:
            raw = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"config file {path} is not valid YAML: {str(e).splitlines()[0]}") from None
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"override {item!r} must look like section.key=value")
        node = raw
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = yaml.safe_load(value)
    return from_dict(raw)


def to_dict(config: Any) -> dict[str, Any]:
    """Plain-data form, used to pass sections to TFX components as custom_config."""
    return dataclasses.asdict(config)


def section_from_dict(cls: type, raw: dict[str, Any]) -> Any:
    """Rebuild one section (e.g. TrainConfig) from its plain-data form inside a component."""
    return _build(cls, raw, cls.__name__)


__all__ = [
    "ConfigError", "DataConfig", "TrainConfig", "EvalConfig", "ExportConfig", "KubeflowConfig",
    "PipelineConfig", "RECIPES", "from_dict", "load", "validate", "to_dict", "section_from_dict",
]

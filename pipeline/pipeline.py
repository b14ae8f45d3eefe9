"""The pipeline, wired from one config. Pure: no environment, no runner, no files touched.

Runners (local_runner.py, kubeflow/runner.py) decide paths and metadata and hand the result to
their orchestrator; the same definition therefore runs on one machine and on a cluster.
"""
from __future__ import annotations

import os
from typing import Any

import phone2dslr    # noqa: F401  (Keras/TF environment first)
from tfx import v1 as tfx

from phone2dslr.components.image_example_gen.component import ImageExampleGen
from phone2dslr.components.latest_pushed_model.component import LatestPushedModel
from phone2dslr.components.model_pusher.component import ModelPusher
from phone2dslr.components.run_report.component import RunReport
from phone2dslr.components.run_report.photos import full_size_dir
from phone2dslr.components.tflite_export.component import TFLiteExport
from phone2dslr.config import PipelineConfig, to_dict
from phone2dslr.pipeline.evaluation import create_eval_config
from phone2dslr.trainer import recipes

# Components are named by module path (no module_file): the same installed package then runs in
# the local runner, in the container image and on Kubeflow.
PREPROCESSING_FN = "phone2dslr.trainer.preprocessing.preprocessing_fn"
RUN_FN = "phone2dslr.trainer.entry.run_fn"

EVAL_SPLIT = "test"  # held-out scenes; `eval` (hashed from the training folders) drives validation


def trainer_custom_config(config: PipelineConfig) -> dict[str, Any]:
    """What run_fn needs, as plain data (TFX passes custom_config as JSON)."""
    train = to_dict(config.train)
    if not train["backup_dir"]:
        train["backup_dir"] = os.path.join(config.pipeline_root, "trainer_backup")
    return {"train": train, "data": to_dict(config.data)}


def create_components(
    config: PipelineConfig,
    until: str | None = None,
    run_fn: str = RUN_FN,
    *,
    baseline: str = "resolver",
    trainer_class: type | None = None,
    trainer_config: dict[str, Any] | None = None,
) -> list[Any]:
    """All components in dependency order; `until` keeps the prefix ending at that component.

    run_fn: the Trainer's entry by module path; tests name fixed (untrained) models here to check
    the gate and the push on models whose quality is known in advance.
    Runner options (kubeflow/cluster.py sets them; the local runner keeps the defaults):
    baseline: "resolver" = the latest blessed model from MLMD; "pushed" = LatestPushedModel, the
      newest push under serving_dir (open-source Kubeflow Pipelines cannot run Resolver nodes).
    trainer_class / trainer_config: a Trainer subclass and extra custom_config keys (multi-worker
      training on Vertex uses TFX's Vertex Trainer, which runs training as a Vertex training job).
    """
    if baseline not in ("resolver", "pushed"):
        raise ValueError(f"baseline {baseline!r}: choose resolver or pushed")
    # The recipe and its overrides are checked now, so a mistake stops the run before ingest
    # rather than at the Trainer (RecipeError: one line).
    recipes.resolve(config.train)
    d = config.data
    example_gen = ImageExampleGen(
        input_base=d.root, layout=d.layout, phone=d.phone, pairing=d.pairing,
        patch_size=d.patch_size, patch_stride=d.patch_stride, patches_per_image=d.patches_per_image,
        eval_percent=d.eval_percent, max_reject_fraction=d.max_reject_fraction, seed=d.seed,
        recursive=d.recursive)
    statistics_gen = tfx.components.StatisticsGen(examples=example_gen.outputs["examples"])
    schema_gen = tfx.components.SchemaGen(
        statistics=statistics_gen.outputs["statistics"], infer_feature_shape=True)
    example_validator = tfx.components.ExampleValidator(
        statistics=statistics_gen.outputs["statistics"], schema=schema_gen.outputs["schema"])
    # materialize=False: decoded float patches are ~3.4x the encoded TFRecords (tens of GB at DPED
    # scale); the Trainer applies the transform graph in its input pipeline instead.
    transform = tfx.components.Transform(
        examples=example_gen.outputs["examples"], schema=schema_gen.outputs["schema"],
        preprocessing_fn=PREPROCESSING_FN, materialize=False,
        custom_config={"patch_size": d.patch_size})
    trainer = (trainer_class or tfx.components.Trainer)(
        run_fn=run_fn,
        examples=example_gen.outputs["examples"],
        transform_graph=transform.outputs["transform_graph"],
        schema=schema_gen.outputs["schema"],
        train_args=tfx.proto.TrainArgs(splits=["train"], num_steps=config.train.train_steps),
        eval_args=tfx.proto.EvalArgs(splits=["eval"], num_steps=config.train.eval_steps),
        custom_config={**trainer_custom_config(config), **(trainer_config or {})})
    # The baseline is the latest blessed model; the first run has none and is judged on absolute
    # thresholds alone.
    if baseline == "pushed":
        baseline = LatestPushedModel(serving_dir=config.serving_dir, candidate=trainer.outputs["model"]
                                     ).with_id("latest_pushed_model")
    else:
        baseline = tfx.dsl.Resolver(
            strategy_class=tfx.dsl.experimental.LatestBlessedModelStrategy,
            model=tfx.dsl.Channel(type=tfx.types.standard_artifacts.Model),
            model_blessing=tfx.dsl.Channel(type=tfx.types.standard_artifacts.ModelBlessing),
        ).with_id("latest_blessed_model_resolver")
    evaluator = tfx.components.Evaluator(
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        baseline_model=baseline.outputs["model"],
        example_splits=[EVAL_SPLIT],
        eval_config=create_eval_config(config.eval))
    e = config.export
    # Converted only for a blessed model; each variant must match the SavedModel and pass the
    # Evaluator's absolute gate on its own outputs, since the .tflite file is what phones run.
    tflite_export = TFLiteExport(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        examples=example_gen.outputs["examples"],
        variants=e.variants, min_parity_psnr=e.min_parity_psnr,
        representative_samples=e.representative_samples, eval_split=EVAL_SPLIT,
        max_eval_images=e.max_eval_images, fixed_tile=e.fixed_tile, author=e.author, license=e.license,
        min_psnr_gain=config.eval.min_psnr_gain, min_ssim_gain=config.eval.min_ssim_gain)
    pusher = ModelPusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        tflite_models=tflite_export.outputs["tflite_models"],
        serving_dir=config.serving_dir)
    t = config.train
    report = RunReport(
        model=trainer.outputs["model"], evaluation=evaluator.outputs["evaluation"],
        blessing=evaluator.outputs["blessing"], examples=example_gen.outputs["examples"],
        tflite_models=tflite_export.outputs["tflite_models"],
        ingest_report=example_gen.outputs["ingest_report"],
        baseline_model=baseline.outputs["model"], eval_split=EVAL_SPLIT,
        model_run=trainer.outputs["model_run"],
        photos_dir=full_size_dir(config.data.layout, config.data.root, config.data.phone),
        run_info={
            "pipeline": config.name, "model": t.model, "train steps": t.train_steps,
            "content loss": t.content if t.content == "vgg19" else f"{t.content} (no pretrained VGG-19)",
            "recipe": (t.recipe or f"{t.model} default") + (f", loss weight overrides {t.loss_weights}" if t.loss_weights else ""),
            "generator": f"{t.filters} filters, head {t.head}"
                         + (", global skip (not in the paper)" if t.global_skip else ""),
            "data": f"{config.data.layout} layout at {config.data.root}, {config.data.patch_size}px patches",
        })
    components = [example_gen, statistics_gen, schema_gen, example_validator, transform, trainer,
                  baseline, evaluator, tflite_export, pusher, report]
    if until is None:
        return components
    names = [c.id for c in components]
    if until not in names:
        raise ValueError(f"--until {until!r} is not a component; choose one of {', '.join(names)}")
    return components[: names.index(until) + 1]


def create_pipeline(
    config: PipelineConfig,
    metadata_connection_config: Any = None,
    until: str | None = None,
    run_fn: str = RUN_FN,
    **options: Any,
) -> tfx.dsl.Pipeline:
    """The TFX pipeline for `config`; metadata settings come from the runner."""
    return tfx.dsl.Pipeline(
        pipeline_name=config.name,
        pipeline_root=config.pipeline_root,
        components=create_components(config, until, run_fn, **options),
        enable_cache=True,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=list(config.beam_pipeline_args),
    )

"""phone2dslr: DPED / WESPE photo enhancement as a TFX pipeline that ships TFLite models.

The one import namespace of the project. The top-level folders install as its subpackages
(setup.py's package_dir): phone2dslr.pipeline, .components, .trainer, .export, .kubeflow. This
module's own bottom layer is plain Python (`config`, `features`, `errors`, `console`); the CLI
(`cli`) sits on top.

Importing phone2dslr sets the process environment before TensorFlow loads, so every entry point
(CLI, TFX executors, Beam workers, containers) imports it first: TFX 1.21, TFMA custom metrics and
multi-worker training need Keras 2 (tf_keras), as TFX's own containers set. TensorFlow's C++ log
defaults to FATAL only (TF_CPP_MIN_LOG_LEVEL=3): every TensorFlow failure that stops work reaches
Python as an exception, which the runners report in one line; its ERROR records without one are
internal fall-backs (a grappler pass skipped, the CUDA probe on a machine without a GPU). The first
`import tensorflow` is held to that level too (`console.hold_tensorflow_start_up`: Abseil ignores
it before start-up). A value set by the user wins; `phone2dslr <command> --verbose` sets 0.

Kubeflow finds the project's own artifact types here: a custom artifact type compiles to the schema
title `phone2dslr.<Name>` (its TYPE_NAME), and TFX's Kubeflow V2 container entry point turns the
title back into a class by importing that dotted path
(kubeflow_v2_entrypoint_utils._retrieve_class_path). Each type is defined in the `component.py` of
its component package and found there on first use (module `__getattr__`).
"""
import importlib
import os
import pkgutil

from phone2dslr import console

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
console.hold_tensorflow_start_up()


def __getattr__(name: str) -> type:
    # Artifact types are CamelCase; any other missing name (a submodule not imported yet, as
    # `from phone2dslr import features` asks before importing it) is not looked for here.
    if not name[:1].isupper():
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from phone2dslr import components

    type_name = f"{__name__}.{name}"
    for package in pkgutil.iter_modules(components.__path__):
        module_name = f"{components.__name__}.{package.name}.component"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        for value in vars(module).values():
            if isinstance(value, type) and value.__dict__.get("TYPE_NAME") == type_name:
                return value
    raise AttributeError(f"no artifact type {type_name} in phone2dslr/components/*/component.py")

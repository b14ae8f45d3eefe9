"""Where Kubeflow finds the project's own artifact types.

A custom artifact type compiles to the schema title `phone2dslr.<Name>` (its TYPE_NAME), and TFX's
Kubeflow V2 container entry point turns the title back into a class by importing that dotted path
(kubeflow_v2_entrypoint_utils._retrieve_class_path). Each type is defined in the `component.py` of
its component package (components/<name>/component.py) and found there on first use.
"""
import importlib
import pkgutil


def __getattr__(name: str) -> type:
    import components

    type_name = f"{__name__}.{name}"
    for package in pkgutil.iter_modules(components.__path__):
        module_name = f"components.{package.name}.component"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as e:
            if e.name != module_name:
                raise
            continue
        for value in vars(module).values():
            if isinstance(value, type) and value.__dict__.get("TYPE_NAME") == type_name:
                return value
    raise AttributeError(f"no artifact type {type_name} in components/*/component.py")

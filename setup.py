"""phone2dslr: a TFX pipeline that learns DPED / WESPE photo enhancement and ships TFLite models.

Install with `make install` (see README): the TFX 1.21 stack needs compatibility pins that plain
pip resolution cannot find on glibc < 2.39, so the exact versions come from requirements/lock.txt.
The ranges below document what the code needs, for tools that read install_requires.
"""
from setuptools import find_packages, setup

# The top-level folders (the project card's layout) install as subpackages of the one namespace
# `phone2dslr`, so the project takes no generic top-level name (pipeline, trainer, kubeflow...).
SUBPACKAGES = ("pipeline", "components", "trainer", "export", "kubeflow")
PACKAGE_DIR = {"phone2dslr": "phone2dslr", **{f"phone2dslr.{d}": d for d in SUBPACKAGES}}
PACKAGES = ["phone2dslr"] + [f"phone2dslr.{p}" for d in SUBPACKAGES
                             for p in [d] + [f"{d}.{sub}" for sub in find_packages(d)]]

setup(
    name="phone2dslr",
    version="0.1.0",
    description="Smartphone-to-DSLR photo enhancement (DPED, WESPE) as a TFX pipeline with TFLite export",
    python_requires=">=3.11,<3.12",
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"": ["*.yaml"]},
    install_requires=[
        "tfx==1.21.0",
        "tensorflow==2.21.0",
        "tensorflow-transform==1.21.0",
        "tensorflow-model-analysis==0.52.0",
        "tensorflow-data-validation>=1.16.1",
        "apache-beam[gcp]==2.77.0",
        "tf-keras==2.21.0",
        "tensorflow-hub>=0.15",
        "kfp>=2.16,<3",
        "Pillow>=10",
        "ai-edge-litert>=2.3",
        "scikit-image>=0.22",
        "scipy>=1.10",
        "PyYAML>=6",
        "matplotlib>=3.8",
        "tqdm>=4",
    ],
    entry_points={"console_scripts": ["phone2dslr=phone2dslr.cli:main"]},
)

"""`phone2dslr` command line: the only place that parses arguments and prints for people."""
from __future__ import annotations

import argparse
import sys

import pipeline  # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
from pipeline import config as config_lib


def _doctor(_: argparse.Namespace) -> int:
    """Import the whole stack the way the pipeline will, so a broken install fails here, not mid-run."""
    import importlib

    import tfx  # noqa: F401  (must precede TFDV: it installs the tfx_bsl stand-in TFDV 1.16 needs)

    versions = {}
    for name in ("tensorflow", "tfx", "tensorflow_transform", "tensorflow_model_analysis",
                 "tensorflow_data_validation", "apache_beam", "tf_keras", "ml_metadata", "kfp"):
        versions[name] = getattr(importlib.import_module(name), "__version__", "?")
    from tfx import v1 as tfx_v1

    missing = [n for n in ("StatisticsGen", "SchemaGen", "ExampleValidator", "Transform", "Trainer")
               if getattr(tfx_v1.components, n) is None]
    if missing:
        print(f"error: TFX components unavailable ({', '.join(missing)}): TFDV failed to import", file=sys.stderr)
        return 1
    from ai_edge_litert.interpreter import Interpreter  # noqa: F401

    print("stack ok: " + ", ".join(f"{k} {v}" for k, v in versions.items()))
    return 0


def _demo_data(args: argparse.Namespace) -> int:
    from pipeline import demo_data

    summary = demo_data.generate(args.out, seed=args.seed, phone=args.phone)
    print(summary)
    return 0


def _run(args: argparse.Namespace) -> int:
    from pipeline import local_runner

    cfg = config_lib.load(args.config, args.set)
    return local_runner.run(cfg, until=args.until)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phone2dslr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run the TFX pipeline locally (LocalDagRunner)")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set train.model=wespe")
    p.add_argument("--until", default=None, help="stop after this component (e.g. ExampleValidator)")
    p.set_defaults(func=_run)

    p = sub.add_parser("demo-data", help="write the embedded demo dataset (DPED and unpaired layouts)")
    p.add_argument("--out", default="demo_data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phone", default="iphone")
    p.set_defaults(func=_demo_data)

    p = sub.add_parser("doctor", help="check that the installed stack imports")
    p.set_defaults(func=_doctor)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except config_lib.ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`phone2dslr` command line: the only place that parses arguments and prints for people."""
from __future__ import annotations

import argparse
import os
import sys
from typing import NoReturn, Sequence

import phone2dslr    # noqa: F401  (sets the Keras/TF environment before TensorFlow loads)
from phone2dslr import config as config_lib
from phone2dslr import console
from phone2dslr.console import count_arg
from phone2dslr.errors import one_line


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
    from phone2dslr.pipeline import demo_data

    summary = demo_data.generate(args.out, seed=args.seed, phone=args.phone)
    print(summary)
    return 0


def _run(args: argparse.Namespace) -> int:
    from phone2dslr.pipeline import local_runner

    from phone2dslr.trainer import recipes

    cfg = config_lib.load(args.config, args.set)
    try:  # the recipe and its overrides are config too: check them before any demo data or ingest
        recipes.resolve(cfg.train)
    except recipes.RecipeError as e:
        raise config_lib.ConfigError(str(e)) from None
    return local_runner.run(cfg, until=args.until, verbose=args.verbose)


def _enhance(args: argparse.Namespace) -> int:
    """Enhance photos. Exit 2, before any photo, for an argument mistake (one line saying what to pass
    instead); 1 when any photo failed (each failure is one line, the summary counts them); else 0."""
    from phone2dslr.export import enhance

    try:
        # File-system checks first: they need no TensorFlow, so a mistyped path costs no model load.
        enhance.check_inputs(args.inputs)
        enhance.check_out_dir(args.out, args.inputs)
        enhance.check_model_path(args.model)
        enhancer = enhance.load_enhancer(args.model, threads=args.threads, overlap=args.overlap,
                                         storage=args.storage, stream_memory=args.stream_memory)
        enhance.check_tile(enhancer, args.tile)
    except enhance.EnhanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from tqdm import tqdm

    tile = "its input size (--tile does not apply)" if enhancer.fixed else (args.tile or "off")
    print(f"model: {enhancer.kind} {args.model} ({enhancer.note}); tile {tile}", file=sys.stderr)
    if enhancer.streamed is None and enhancer.keras_model is None and (
            args.storage != "float32" or args.stream_memory != enhance.DEFAULT_STREAM_MEMORY):
        print("note: --storage and --stream-memory apply to models that normalize over the image only; "
              "this one does not use them", file=sys.stderr)
    try:
        summary = enhance.enhance_files(args.inputs, enhancer, args.out, tile=args.tile, quality=args.quality,
                                        progress=not args.no_progress, max_pixels=args.max_pixels,
                                        report=lambda line: tqdm.write(line, file=sys.stderr))
    except enhance.EnhanceError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(summary)
    return 1 if summary.failed or not summary.written else 0


def _import_dped(args: argparse.Namespace) -> int:
    from phone2dslr.export import official_dped

    variants = [v for v in args.tflite.split(",") if v]
    # Before TensorFlow loads: an --out that cannot take the import, or holds an earlier one whose
    # models would be left beside this one's (nothing would say which file is which import).
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        print(f"error: --out {args.out} is a file; pass a new or empty folder", file=sys.stderr)
        return 2
    if os.path.isdir(args.out) and os.listdir(args.out):
        print(f"error: --out {args.out} is not empty ({', '.join(sorted(os.listdir(args.out))[:4])}); pass a new or "
              "empty folder, so that no model of an earlier import is left beside this one's", file=sys.stderr)
        return 2
    try:
        os.makedirs(args.out, exist_ok=True)
    except OSError as e:
        print(f"error: cannot create --out {args.out}: {e.strerror or e}", file=sys.stderr)
        return 2
    try:
        result = official_dped.export(args.checkpoint, args.out, variants=variants,
                                      min_parity_psnr=args.min_parity_psnr)
    except (official_dped.OfficialCheckpointError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"SavedModel: {result['saved_model']} ({result['filters']} filters)")
    for variant, r in result["tflite"].items():
        print(f"TFLite {variant}: {r['file']} ({r['reason']})")
    return 0 if all(r["passed"] for r in result["tflite"].values()) else 1


def _kubeflow(args: argparse.Namespace) -> int:
    """Compile for Kubeflow Pipelines / Vertex AI; submit when an endpoint (or --submit) is given.

    Exit 2 with one line for what the user can fix (config, credential, and on KFP an unreachable
    host, a refused credential, a missing namespace, a rejected package); 1 for any other failure.
    """
    from phone2dslr.kubeflow import credentials, runner, submit

    if args.token is not None or args.cookie is not None:  # the value is never echoed back
        print("error: secrets are not taken on the command line (shell history, ps): put the token in a "
              f"file for --token-file / --cookie-file, or in ${credentials.TOKEN_ENV} / "
              f"${credentials.COOKIE_ENV}", file=sys.stderr)
        return 2
    overrides = args.set + ([f"kubeflow.namespace={args.namespace}"] if args.namespace is not None else [])
    cfg = runner.load_config(args.config, args.profile, overrides)
    credential = None
    if (args.endpoint or args.submit) and cfg.kubeflow.target == "kfp":
        # Before the compile: a missing token file or a host without scheme costs no TFX compile.
        credential = credentials.resolve(args.token_file, args.cookie_file)
        submit.resolve_host(args.endpoint)
        try:  # an unreachable host or a refused credential, said before a compile of a minute or more
            submit.preflight(args.endpoint, credential, cfg.kubeflow.namespace)
        except submit.SubmitError as e:
            print(f"submit failed (nothing compiled): {e}", file=sys.stderr)
            return 2
    compiled = runner.compile_pipeline(cfg, args.out, until=args.until)
    kind = "Vertex AI PipelineJob" if compiled.target == "vertex" else "Kubeflow Pipelines v2 spec"
    print(f"wrote {compiled.package} ({kind}, {len(compiled.steps)} steps, image {cfg.kubeflow.image}, "
          f"pipeline root {compiled.pipeline_root})")
    if not (args.endpoint or args.submit):
        print(submit.how_to_submit(compiled, cfg))
        return 0
    if compiled.target == "vertex" and args.endpoint:
        print("error: --endpoint is a Kubeflow Pipelines host; Vertex runs use --submit", file=sys.stderr)
        return 2
    caching = False if args.no_cache else None
    try:
        if compiled.target == "vertex":
            job = submit.submit_vertex(compiled, cfg, run_name=args.run_name, enable_caching=caching)
            print(f"submitted {job.resource_name}")
        else:
            run = submit.submit_kfp(compiled, cfg, args.endpoint, run_name=args.run_name,
                                    experiment=args.experiment, enable_caching=caching, credential=credential)
            print(f"submitted run {run.run_id} to {run.host} (namespace {run.namespace or '-'}; "
                  f"{run.credential})\n  {run.url}")
    except (submit.SubmitError, submit.SubmitFailed) as e:  # already one line, the credential masked
        print(f"submit failed (the package is written): {e}", file=sys.stderr)
        return 2 if isinstance(e, submit.SubmitError) else 1
    except Exception as e:  # noqa: BLE001 - a cluster's many failure types become one line
        print(f"submit failed (the package is written): {one_line(e, prefer_ours=True, limit=2000)}",
              file=sys.stderr)
        return 1
    return 0


def _terse_usage_errors(parser: argparse.ArgumentParser) -> None:
    """Make `parser`'s usage errors one line on stderr, exit 2, instead of argparse's usage block;
    arguments it does not know are such an error too (argparse leaves those to the top-level parser,
    which prints its own usage). A line that does not already say what to pass ends with the usage."""
    def error(message: str) -> NoReturn:
        if "; pass " not in message:
            message += f" (usage: {' '.join(parser.format_usage().split()[1:])})"
        parser.exit(2, f"error: {message}\n")

    parse_known_args = parser.parse_known_args

    def parse_strictly(args: Sequence[str] | None = None,
                       namespace: argparse.Namespace | None = None) -> tuple[argparse.Namespace, list[str]]:
        namespace, extras = parse_known_args(args, namespace)
        if extras:
            error(f"unrecognized arguments: {' '.join(extras)}")
        return namespace, extras

    parser.error = error  # type: ignore[method-assign]
    parser.parse_known_args = parse_strictly  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="phone2dslr", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    # Every command takes --verbose after its name (`phone2dslr run --verbose`).
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true",
                        help="print everything: TensorFlow's C++ log, TFX's INFO log, the warnings a "
                             "normal run hides as known noise (phone2dslr/console.py)")

    p = sub.add_parser("run", parents=[common],
                       help="run the TFX pipeline locally (LocalDagRunner)")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value (repeatable), e.g. --set train.model=wespe")
    p.add_argument("--until", default=None, help="stop after this component (e.g. ExampleValidator)")
    p.set_defaults(func=_run)

    p = sub.add_parser("demo-data", parents=[common],
                       help="write the embedded demo dataset (DPED and unpaired layouts)")
    p.add_argument("--out", default="demo_data")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--phone", default="iphone")
    p.set_defaults(func=_demo_data)

    p = sub.add_parser("enhance", parents=[common],
                       help="enhance photos (files or folders) with a .tflite, SavedModel or "
                            "official DPED checkpoint, tiled to bound memory")
    p.add_argument("inputs", nargs="+", help="JPEG/PNG files or folders of them")
    p.add_argument("--model", required=True,
                   help="a .tflite file, a SavedModel folder, or a TF1 checkpoint prefix (models_orig/iphone_orig)")
    p.add_argument("--out", required=True, help="output folder (same names and formats as the inputs)")
    p.add_argument("--tile", type=count_arg(0, example=512), default=512,
                   help="tile side in pixels (bounds memory; at least 2 * the model's receptive-field radius "
                        "+ 1); 0: whole image")
    p.add_argument("--quality", type=count_arg(1, 100, example=95), default=95,
                   help="JPEG quality of the outputs (1-100)")
    p.add_argument("--threads", type=count_arg(1, example=2), default=2, help="TFLite threads")
    p.add_argument("--overlap", type=count_arg(0, example=64), default=None, metavar="PX",
                   help=".tflite only: pixels the tiles overlap (2 x the receptive-field radius), for a model whose "
                        "graph cannot be walked and whose metadata says nothing (e.g. a fixed-size mobile-challenge "
                        "model: 64 is assumed); overrides what the model says")
    p.add_argument("--storage", choices=("float32", "float16"), default="float32",
                   help="models that normalize over the image (official DPED weights) keep whole-image activations "
                        "between their stages: float32 (exact) or float16 (half the memory, ~60 dB from exact)")
    p.add_argument("--stream-memory", type=count_arg(0, example=2048), default=2048, metavar="MIB",
                   help="a streamable .tflite of such a model keeps at most MIB MiB of whole-image activations "
                        "(default 2048; also with --tile 0); for a larger photo it recomputes them tile by tile "
                        "(bounded memory, ~3x the time)")
    p.add_argument("--max-pixels", type=count_arg(0, example=250_000_000), default=250_000_000, metavar="N",
                   help="skip (in one line) photos of more than N pixels, width x height; tiled, a photo takes "
                        "about 8 bytes a pixel in 8-bit (12 in 16-bit); 0: no limit (default 250 million)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_enhance)
    _terse_usage_errors(p)

    p = sub.add_parser("import-dped", parents=[common],
                       help="import the authors' DPED checkpoint (models_orig/<phone>_orig) "
                            "as a SavedModel and TFLite")
    p.add_argument("--checkpoint", required=True, help="checkpoint prefix, e.g. models_orig/iphone_orig")
    p.add_argument("--out", required=True, help="output folder, new or empty: saved_model/ and <variant>.tflite")
    p.add_argument("--tflite", default="float32",
                   help="comma-separated TFLite variants (float32, float16, dynamic_int8, int8, fixed; float32 and "
                        "float16 are streamable); empty for none")
    p.add_argument("--min-parity-psnr", type=float, default=40.0,
                   help="a TFLite variant below this PSNR (dB) vs the SavedModel goes under rejected/")
    p.set_defaults(func=_import_dped)

    p = sub.add_parser("kubeflow", parents=[common],
                       help="compile the pipeline for Kubeflow Pipelines v2 (.yaml) or Vertex AI "
                            "(.json) and optionally submit it")
    p.add_argument("--config", default="configs/demo.yaml", help="the pipeline config (as for `run`)")
    p.add_argument("--profile", default="configs/cluster/kubeflow.yaml",
                   help="cluster profile laid over the config (configs/cluster/*.yaml)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value after the profile (repeatable)")
    p.add_argument("--out", default=None, help="package path (default runs/kubeflow/<name>.yaml|.json)")
    p.add_argument("--until", default=None, help="compile only up to this component")
    p.add_argument("--endpoint", default=None, help="KFP API host, e.g. http://localhost:8080; submits the run")
    p.add_argument("--submit", action="store_true",
                   help="submit after compiling (Vertex: kubeflow.project/region; KFP: in-cluster host)")
    p.add_argument("--run-name", default=None, help="name of the submitted run")
    p.add_argument("--experiment", default=None, help="KFP experiment of the run (default: Default)")
    p.add_argument("--namespace", default=None,
                   help="KFP: your profile namespace on a multi-user Kubeflow (sets kubeflow.namespace)")
    p.add_argument("--token-file", default=None, metavar="PATH",
                   help="KFP: file holding a bearer token; else $KF_PIPELINES_SA_TOKEN_PATH (in a pod), "
                        "$KFP_BEARER_TOKEN, $KFP_SESSION_COOKIE are tried, in this order")
    p.add_argument("--cookie-file", default=None, metavar="PATH",
                   help="KFP: file holding a gateway session cookie, name=value (authservice_session=... "
                        "or oauth2_proxy_kubeflow=...)")
    # Not offered: caught so that a secret typed as a value is refused without being echoed, and
    # so that argparse's prefix matching cannot take `--token X` for `--token-file X`.
    p.add_argument("--token", default=None, help=argparse.SUPPRESS)
    p.add_argument("--cookie", default=None, help=argparse.SUPPRESS)
    p.add_argument("--no-cache", action="store_true",
                   help="rerun every step (the cluster caches by parameters: new photos under the same "
                        "data.root are not noticed otherwise)")
    p.set_defaults(func=_kubeflow)

    p = sub.add_parser("doctor", parents=[common],
                       help="check that the installed stack imports")
    p.set_defaults(func=_doctor)

    args = parser.parse_args(argv)
    console.configure(verbose=args.verbose)  # before any command loads TensorFlow
    try:
        return args.func(args)
    except KeyboardInterrupt:  # Ctrl-C: the user knows why; a traceback would bury what was done
        print(f"interrupted: phone2dslr {args.command} stopped by Ctrl-C", file=sys.stderr)
        return 130
    except config_lib.ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    except ValueError as e:
        # The project's own errors (bad demo-data parameters, ingest errors, ...) are ValueErrors
        # with one-line messages; anything else keeps its traceback.
        if type(e).__module__.split(".")[0] != "phone2dslr":
            raise
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""The Beam components on engines that ship every transform to worker processes, against the DirectRunner.

Portable: `--runner=PortableRunner --job_endpoint=embed --environment_type=EXTERNAL` hands every
stage to SDK workers started by Beam's worker pool (`worker_pool_main`), which is how the README's
Flink and Spark settings run our code in the beam-worker image. Those workers import TFDV without
the pipeline having imported tfx; `--beam_plugin=tfx` (beam_workers.portable_args) is what lets
StatisticsGen run there.

Dask: a scheduler and two worker processes on loopback. Beam 2.77's own DaskRunner cannot run a
TFX component's pipeline (pipeline/dask_runner.py says why); phone2dslr's DaskRunner runs all three.

Each engine must write the DirectRunner's examples byte for byte, count them all in StatisticsGen
and analyse the training split in Transform. A last, quick test pins down the runner's semantics
where Beam's own DaskRunner goes wrong.
"""
from __future__ import annotations

import socket
import time
import uuid

import apache_beam as beam
import pytest

from phone2dslr.pipeline import beam_workers
from tests.components.beam_engine_helpers import check_engine, direct_examples, make_photos, run_components

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """(photo folder, the examples the in-process DirectRunner writes for it)."""
    root = tmp_path_factory.mktemp("engines")
    data = make_photos(root)
    return data, direct_examples(data, root / "direct")


def test_portable_runner_with_an_external_worker_pool(photos, tmp_path):
    data, direct = photos
    start = time.monotonic()
    # One SDK worker per job: each new worker imports TensorFlow, and this machine may have 2 cores.
    with beam_workers.worker_pool(log=str(tmp_path / "worker_pool.log")) as pool:
        root = run_components(data, tmp_path / "portable", beam_workers.portable_args(pool, parallelism=1))
    print(f"portable runner, 3 Beam components: {time.monotonic() - start:.1f} s")
    check_engine(root, direct)


def test_dask_cluster_of_two_worker_processes(photos, tmp_path):
    data, direct = photos
    start = time.monotonic()
    with beam_workers.dask_cluster(workers=2, log=str(tmp_path / "dask.log")) as scheduler:
        root = run_components(data, tmp_path / "dask", beam_workers.dask_args(scheduler))
    print(f"dask cluster, 3 Beam components: {time.monotonic() - start:.1f} s")
    check_engine(root, direct)


def _even_odd(x: int):
    yield x if x % 2 == 0 else beam.pvalue.TaggedOutput("odd", x)


def test_dask_runner_keeps_outputs_apart_and_runs_a_transform_once(tmp_path):
    """What Beam 2.77's DaskRunner gets wrong, in seconds: outputs of a multi-output ParDo mixed, only
    the last sink computed, a side input recomputed (a random token differing between readers)."""
    from apache_beam.options.pipeline_options import PipelineOptions
    from dask.distributed import LocalCluster

    from phone2dslr.pipeline.dask_runner import DaskRunnerError

    with LocalCluster(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as cluster:
        options = PipelineOptions(beam_workers.dask_args(cluster.scheduler_address))
        with beam.Pipeline(options=options) as p:
            token = p | "Once" >> beam.Create([None]) | "Token" >> beam.Map(lambda _: uuid.uuid4().hex)
            parts = p | beam.Create(range(10)) | beam.ParDo(_even_odd).with_outputs("odd", main="even")
            for name in ("even", "odd"):
                _ = (parts[name] | f"Tag[{name}]" >> beam.Map(lambda x, t: f"{x} {t}", beam.pvalue.AsSingleton(token))
                     | f"Write[{name}]" >> beam.io.WriteToText(str(tmp_path / name), shard_name_template=""))
            _ = token | beam.io.WriteToText(str(tmp_path / "token"), shard_name_template="")
        with pytest.raises(DaskRunnerError, match="only the global window"):
            with beam.Pipeline(options=options) as p:
                _ = (p | beam.Create([(1, 2)]) | beam.WindowInto(beam.window.FixedWindows(10))
                     | beam.GroupByKey())
    lines = {name: (tmp_path / name).read_text().split() for name in ("even", "odd", "token")}
    assert sorted(map(int, lines["even"][::2])) == [0, 2, 4, 6, 8]
    assert sorted(map(int, lines["odd"][::2])) == [1, 3, 5, 7, 9]
    assert set(lines["even"][1::2]) == set(lines["odd"][1::2]) == set(lines["token"])


def test_worker_commands_refuse_a_taken_port_and_bad_counts_in_one_line(capsys):
    with socket.socket() as busy:  # something already listens: gRPC would share the port silently
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert beam_workers.main(["pool", "--port", str(port)]) == 2
    assert capsys.readouterr().err == f"error: port {port} is in use (another worker pool or scheduler?); pick another --port\n"
    for bad in (["dask", "--workers", "0"], ["pool", "--port", "99999"]):
        with pytest.raises(SystemExit) as stop:
            beam_workers.main(bad)
        assert stop.value.code == 2
        assert capsys.readouterr().err.strip().splitlines()[-1].startswith("python -m phone2dslr.pipeline.beam_workers: error: argument")


def test_an_unreachable_pool_or_scheduler_is_one_line_before_the_run():
    with socket.socket() as probe:  # a port nothing listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    pool = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}"]
    assert beam_workers.unreachable_workers(pool) == (
        f"the Beam worker pool at localhost:{port} is not reachable (connection refused): start one with "
        f"`python -m phone2dslr.pipeline.beam_workers pool --port {port}`, or fix beam_pipeline_args")
    assert "dask scheduler at tcp://127.0.0.1:" in beam_workers.unreachable_workers(
        [f"--dask_client_address=tcp://127.0.0.1:{port}"])
    # A Flink job server's pool runs beside its TaskManagers: not this machine's to check.
    assert beam_workers.unreachable_workers(["--runner=FlinkRunner", "--environment_type=EXTERNAL",
                                             f"--environment_config=localhost:{port}"]) is None
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        assert beam_workers.unreachable_workers(pool[:3] + [f"--environment_config=localhost:{busy.getsockname()[1]}"]) is None

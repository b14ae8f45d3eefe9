"""Beam workers in their own processes on this machine: an SDK worker pool and a dask.distributed cluster.

    python -m phone2dslr.pipeline.beam_workers pool --port 50000             # then portable_args(...)
    python -m phone2dslr.pipeline.beam_workers dask --port 8786 --workers 2  # then dask_args(...)

tfx first. Worker processes import TFDV without the pipeline's process having imported `tfx`, and
TFDV 1.16 imports only after tfx (TFX installs the `tfx_bsl.arrow.sql_util` stand-in it needs):
StatisticsGen failed on the first SDK worker with "cannot import name 'sql_util'". So every
worker imports tfx before any pipeline code: SDK workers through Beam's own `--beam_plugin=tfx`
(`sdk_worker_main` imports plugins at start: Dataflow, Flink and Spark workers, and the workers
here); the dask scheduler (it unpickles the task graph) with `--preload tfx`, the dask workers
by importing it before they start.

The worker pool is Beam's worker pool service (`worker_pool_main`), answering the portable
runner's `--environment_type=EXTERNAL` requests as the beam-worker image does beside a Flink
TaskManager or Spark executor: each worker is its own process running Beam's `sdk_worker_main`
with the job's options fetched from the provision service, as the container's boot program starts
it. Beam's pool started without a container executable runs bare SdkHarness processes that never
read the options, so plugins would never be imported. Unlike the container, no staged package is
installed: the workers run this environment, where the project is installed.

Warm starts. Importing TensorFlow costs about 10 s of CPU here. SDK workers are forked from a
process that has imported Beam and TensorFlow (a multiprocessing forkserver), so a job's workers
start in about a second, and nothing of the pipeline is preloaded for them: tfx and the rest come
from the job, as in a container. Dask workers are forked the same way from one process that has
imported tfx, TensorFlow and distributed once, rather than each importing them (`dask worker`
spawns every worker afresh); they run without a nanny, so a worker that dies is not restarted.
"""
from __future__ import annotations

import argparse
import contextlib
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Iterator

PLUGIN = "tfx"  # imported first by every worker: see the module docstring
# What every SDK worker needs whatever the job: the environment (phone2dslr sets TF_USE_LEGACY_KERAS
# before TensorFlow loads), the SDK harness and TensorFlow.
WARM_MODULES = ("phone2dslr", "apache_beam.runners.worker.sdk_worker_main", "tensorflow")
_FORKS = None  # the forkserver context of a pool process (serve_pool)


def portable_args(pool: str, parallelism: int = 2) -> list[str]:
    """beam_pipeline_args for the portable runner with an embedded job service and external workers
    served by the worker pool at `pool` (host:port)."""
    return ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL",
            f"--environment_config={pool}", f"--sdk_worker_parallelism={parallelism}", f"--beam_plugin={PLUGIN}"]


def dask_args(scheduler: str) -> list[str]:
    """beam_pipeline_args for phone2dslr's Dask runner on the scheduler at `scheduler` (tcp://host:port)."""
    return ["--runner=phone2dslr.pipeline.dask_runner.DaskRunner", f"--dask_client_address={scheduler}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker_env(worker_id: str, control: str, logging_url: str, provision: str) -> dict[str, str]:
    """What the SDK container's boot program hands `sdk_worker_main`: the job's options (from the
    provision service) and the endpoints, as environment variables."""
    import grpc
    from apache_beam.portability.api import beam_provision_api_pb2, beam_provision_api_pb2_grpc, endpoints_pb2
    from google.protobuf import json_format, text_format

    with grpc.insecure_channel(provision) as channel:
        info = beam_provision_api_pb2_grpc.ProvisionServiceStub(channel).GetProvisionInfo(
            beam_provision_api_pb2.GetProvisionInfoRequest(), metadata=[("worker_id", worker_id)]).info

    def descriptor(url: str) -> str:
        return text_format.MessageToString(endpoints_pb2.ApiServiceDescriptor(url=url))

    return {"WORKER_ID": worker_id, "PIPELINE_OPTIONS": json_format.MessageToJson(info.pipeline_options),
            "CONTROL_API_SERVICE_DESCRIPTOR": descriptor(info.control_endpoint.url or control),
            "LOGGING_API_SERVICE_DESCRIPTOR": descriptor(info.logging_endpoint.url or logging_url),
            "RUNNER_CAPABILITIES": " ".join(info.runner_capabilities)}  # no staged files: no semi-persistent dir


def _run_worker(worker_id: str, control: str, logging_url: str, provision: str) -> None:
    """One SDK worker process: Beam's `sdk_worker_main`, as the container's boot starts it."""
    os.environ.update(_worker_env(worker_id, control, logging_url, provision))
    from apache_beam.runners.worker import sdk_worker_main

    sdk_worker_main.main([])


def _warm_up() -> None:
    """A process that does nothing: starting it makes the forkserver import WARM_MODULES."""


def _pool_class():
    from apache_beam.portability.api import beam_fn_api_pb2
    from apache_beam.runners.worker import worker_pool_main

    class WarmWorkerPool(worker_pool_main.BeamFnExternalWorkerPoolServicer):
        """Beam's worker pool service, each worker forked from the warm process (see the module docstring)."""

        forks: dict = {}

        def StartWorker(self, request, unused_context):  # noqa: N802  (the gRPC method name)
            for done in [k for k, w in self.forks.items() if not w.is_alive()]:  # workers end with their job
                self.forks.pop(done).join()
            worker = _FORKS.Process(target=_run_worker, name=f"beam-{request.worker_id}", args=(
                request.worker_id, request.control_endpoint.url, request.logging_endpoint.url,
                request.provision_endpoint.url))
            worker.start()
            self.forks[request.worker_id] = worker
            return beam_fn_api_pb2.StartWorkerResponse()

        def StopWorker(self, request, unused_context):  # noqa: N802
            worker = self.forks.pop(request.worker_id, None)
            if worker is not None and worker.is_alive():
                worker.terminate()
                worker.join(10)
            return beam_fn_api_pb2.StopWorkerResponse()

    return WarmWorkerPool


async def _dask_worker(scheduler: str, threads: int) -> None:
    from distributed import Worker

    async with Worker(scheduler, nthreads=threads, host="127.0.0.1", dashboard=False) as worker:
        await worker.finished()


def _run_dask_worker(scheduler: str, threads: int) -> None:
    """One dask worker process (no nanny: a worker that dies is not restarted)."""
    import asyncio

    asyncio.run(_dask_worker(scheduler, threads))


def serve_dask_workers(scheduler: str, workers: int, threads: int) -> None:
    """`workers` dask worker processes forked from one that has imported tfx and TensorFlow once,
    until SIGTERM; the dask CLI would spawn each afresh, every one importing TensorFlow again."""
    forks = multiprocessing.get_context("forkserver")
    forks.set_forkserver_preload([*WARM_MODULES, PLUGIN, "distributed"])
    started = [forks.Process(target=_run_dask_worker, args=(scheduler, threads)) for _ in range(workers)]
    for worker in started:
        worker.start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        for worker in started:
            worker.join()
    finally:
        for worker in started:
            worker.kill()


def serve_pool(port: int) -> None:
    """Runs the worker pool service on `port` until SIGTERM or Ctrl-C."""
    global _FORKS  # pylint: disable=global-statement
    _FORKS = multiprocessing.get_context("forkserver")
    _FORKS.set_forkserver_preload(list(WARM_MODULES))
    pool = _pool_class()
    _, server = pool.start(use_process=True, port=port)
    # The forkserver imports WARM_MODULES now, while the pool already listens, not in the first job's time.
    threading.Thread(target=lambda: _FORKS.Process(target=_warm_up).start(), daemon=True).start()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        server.stop(0)
        for worker in pool.forks.values():
            worker.terminate()


def _wait_for_port(port: int, process: subprocess.Popen, what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with code {process.returncode} before listening on port {port}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def _start(command: list[str], out) -> subprocess.Popen:
    """A child in a process group of its own, so `_stop` also ends the processes it starts."""
    return subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _stop(processes: list[subprocess.Popen], grace: float = 5) -> None:
    """SIGTERM, then after `grace` seconds SIGKILL to each child's process group (workers included:
    a worker that has loaded TensorFlow can take many seconds to exit)."""
    for p in reversed(processes):  # workers before the service they report to
        if p.poll() is None:
            p.terminate()
    deadline = time.monotonic() + grace
    for p in reversed(processes):
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)  # the group _start made: this child and what it started
        p.wait()


@contextlib.contextmanager
def worker_pool(port: int | None = None, log: str | None = None) -> Iterator[str]:
    """The SDK worker pool (`serve_pool`) in a child process; yields localhost:PORT once it listens."""
    port = port or free_port()
    with open(log or os.devnull, "ab") as out:
        pool = _start([sys.executable, "-m", "phone2dslr.pipeline.beam_workers", "pool", "--port", str(port)], out)
        try:
            _wait_for_port(port, pool, "the Beam worker pool", 60)
            yield f"localhost:{port}"
        finally:
            _stop([pool])


@contextlib.contextmanager
def dask_cluster(workers: int = 2, threads: int = 1, port: int | None = None,
                 log: str | None = None) -> Iterator[str]:
    """A dask scheduler and `workers` worker processes on loopback, each importing tfx first;
    yields the scheduler's tcp:// address once every worker has joined."""
    port = port or free_port()
    with open(log or os.devnull, "ab") as out:
        # The scheduler unpickles the task graph: tfx first there too.
        started = [_start([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                           "--port", str(port), "--no-dashboard", "--preload", PLUGIN], out)]
        try:
            _wait_for_port(port, started[0], "the dask scheduler", 120)
            address = f"tcp://127.0.0.1:{port}"
            started.append(_start([sys.executable, "-m", "phone2dslr.pipeline.beam_workers", "dask-workers",
                                   address, "--workers", str(workers), "--threads", str(threads)], out))
            from dask.distributed import Client

            with Client(address, timeout=120) as client:
                client.wait_for_workers(workers, timeout=180)
            yield address
            with contextlib.suppress(Exception), Client(address, timeout=10) as client:
                client.shutdown()  # scheduler and workers close now rather than at SIGTERM
        finally:
            _stop(started)


def unreachable_workers(beam_args: list[str]) -> str | None:
    """One line when `beam_args` name an external worker pool that this machine must reach (the
    embedded job service: --job_endpoint=embed, --environment_type=EXTERNAL,
    --environment_config=host:port; a Flink or Spark job server's pool is the cluster's, not ours to
    check) or a dask scheduler (--dask_client_address=tcp://host:port) that nothing answers on,
    saying how to start one; None when reachable or not named. Checked before a run, so a wrong
    port is not a Beam traceback a minute later."""
    options = dict(a[2:].split("=", 1) for a in beam_args if a.startswith("--") and "=" in a)
    if (options.get("job_endpoint") == "embed" and options.get("environment_type") == "EXTERNAL"
            and options.get("environment_config")):
        what, address, start = "the Beam worker pool", options["environment_config"], "pool"
    elif options.get("dask_client_address"):
        what, address, start = "the dask scheduler", options["dask_client_address"], "dask"
    else:
        return None
    host, _, port = address.split("://")[-1].rpartition(":")
    try:
        with socket.create_connection((host or "localhost", int(port)), timeout=5):
            return None
    except (OSError, ValueError) as e:
        why = "connection refused" if isinstance(e, ConnectionRefusedError) else (getattr(e, "strerror", None) or str(e))
        return (f"{what} at {address} is not reachable ({why}): start one with `python -m "
                f"phone2dslr.pipeline.beam_workers {start} --port {port}`, or fix beam_pipeline_args")


def _port_taken(port: int) -> bool:
    """Whether something already listens on `port` (gRPC would bind beside it with SO_REUSEPORT
    and share its jobs without a word)."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def main(argv: list[str] | None = None) -> int:
    """`pool` (the worker pool service, in this process) or `dask` (a scheduler and workers), until Ctrl-C."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["dask-workers"]:  # started by dask_cluster: SCHEDULER --workers N --threads T
        workers = argparse.ArgumentParser()
        workers.add_argument("scheduler")
        workers.add_argument("--workers", type=int, default=2)
        workers.add_argument("--threads", type=int, default=1)
        a = workers.parse_args(argv[1:])
        serve_dask_workers(a.scheduler, a.workers, a.threads)
        return 0
    from phone2dslr.console import count_arg  # the CLI's argparse type: one line that says what to pass

    parser = argparse.ArgumentParser(prog="python -m phone2dslr.pipeline.beam_workers")
    parser.add_argument("what", choices=("pool", "dask"))
    parser.add_argument("--port", type=count_arg(1, 65535), default=None)
    parser.add_argument("--workers", type=count_arg(1), default=2, help="dask worker processes")
    parser.add_argument("--threads", type=count_arg(1), default=1, help="threads per dask worker")
    args = parser.parse_args(argv)
    if args.port and _port_taken(args.port):
        print(f"error: port {args.port} is in use (another worker pool or scheduler?); pick another --port",
              file=sys.stderr)
        return 2
    if args.what == "pool":
        port = args.port or free_port()
        print(f"Beam worker pool at localhost:{port}; beam_pipeline_args: {portable_args(f'localhost:{port}')}",
              flush=True)
        serve_pool(port)
        return 0
    # The scheduler and workers run in process groups of their own: stop them on SIGTERM too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with dask_cluster(args.workers, args.threads, args.port) as address:
        print(f"dask scheduler at {address}; beam_pipeline_args: {dask_args(address)}  (Ctrl-C stops)", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


if __name__ == "__main__":
    # Through the module's own name, so the forkserver's children find _run_worker by its import path.
    from phone2dslr.pipeline import beam_workers

    sys.exit(beam_workers.main())

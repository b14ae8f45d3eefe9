"""A Beam runner over a dask.distributed cluster that runs the pipelines TFX builds.

    --runner=phone2dslr.pipeline.dask_runner.DaskRunner --dask_client_address=tcp://HOST:8786

Beam 2.77's own DaskRunner (apache_beam.runners.dask) runs single-output chains, but a TFX
component's pipeline is more than that, and there it computes wrong results or none:
- a multi-output ParDo (`with_outputs`, also inside Beam's Partition and hot-key fan-out) feeds
  every output's consumers with the elements of all outputs; ImageExampleGen's first GroupByKey
  then received count dicts among its (key, value) pairs;
- only the bag of the last transform visited is computed, so other sinks (the other splits, the
  report) are never written;
- a side input is recomputed, upstream graph and all, inside every task that reads it, and
  elements output in `finish_bundle` are dropped;
- elements stay in the partitions `Create` made (one for a handful of folders), so little of a
  pipeline runs in parallel, and Read (TFRecord sources: StatisticsGen, Transform) is not translated.

This runner keeps Beam's options (`--dask_client_address`, `--dask_npartitions`, ...) and its
Create/Flatten/Read/Reshuffle placeholders and translates the primitives itself: each PCollection
is one dask bag of plain values, a multi-output ParDo yields (tag, value) pairs split per output,
side inputs are computed once and broadcast, GroupByKey re-partitions over the cluster, Read
splits its source, and every sink is computed in one graph. Batch and the global window only (what
TFX uses): a GroupByKey in another window, state, timers and splittable DoFns are refused in one
line, never run wrong.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Iterable

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.internal import pickler
from apache_beam.pipeline import AppliedPTransform, PipelineVisitor, PTransformOverride
from apache_beam.runners.common import DoFnContext, DoFnInvoker, DoFnSignature, Receiver, _OutputHandler
from apache_beam.runners.dask import dask_runner as beam_dask
from apache_beam.runners.dask.overrides import _Create, _Flatten, _GroupByKeyOnly, _Read, _Reshuffle
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms import window
from apache_beam.transforms.sideinputs import SideInputMap

SOURCE_BUNDLE_BYTES = 64 << 20  # a Read source is split into bundles of about this size
MIN_PARTITIONS = 4


class DaskRunnerError(NotImplementedError):
    """A transform this runner cannot run faithfully; the message is one line naming it."""


def _global(value: Any) -> Any:
    return window.GlobalWindows.windowed_value(value)


class _Collect(Receiver):
    """Appends (tag, value) of every windowed value a DoFn outputs to `out`."""

    def __init__(self, tag: str | None, out: list):
        self._tag, self._out = tag, out

    def receive(self, windowed_value) -> None:
        self._out.append((self._tag, windowed_value.value))


class _Receivers(dict):
    def __init__(self, out: list):
        super().__init__()
        self._out = out

    def __missing__(self, tag):
        receiver = self[tag] = _Collect(tag, self._out)
        return receiver


@dataclasses.dataclass
class _DoFnCall:
    """Everything a task needs to run one ParDo over one partition (pickled into the graph once)."""

    fn: beam.DoFn
    label: str
    args: tuple
    kwargs: dict
    views: list  # (view class, view options) per side input, in the ParDo's order

    def __call__(self, items: Iterable, *side_values: list) -> list:
        out: list = []
        receivers = _Receivers(out)
        handler = _OutputHandler(window_fn=window.GlobalWindows(), main_receivers=receivers[None],
                                 tagged_receivers=receivers, per_element_output_counter=None,
                                 output_batch_converter=None, process_yields_batches=False,
                                 process_batch_yields_elements=False)
        side_inputs = [SideInputMap(view, options, [_global(v) for v in values])
                       for (view, options), values in zip(self.views, side_values)]
        invoker = DoFnInvoker.create_invoker(
            DoFnSignature(self.fn), handler, context=DoFnContext(self.label), side_inputs=side_inputs,
            input_args=list(self.args), input_kwargs=self.kwargs, user_state_context=None,
            bundle_finalizer_param=beam.DoFn.BundleFinalizerParam())
        invoker.invoke_setup()
        invoker.invoke_start_bundle()
        for item in items:
            invoker.invoke_process(_global(item))
        invoker.invoke_finish_bundle()  # after the loop, and its outputs kept: BatchElements emits here
        invoker.invoke_teardown()
        return out


class _Shipped:
    """An object pickled with Beam's pickler (as every runner ships DoFns), unpickled where it is used.

    The dask scheduler unpickles the task graph it is given; opaque bytes keep it from importing
    TensorFlow, TFDV and the rest just to schedule, and every task gets its own copy of the DoFn
    (Beam never runs one DoFn instance in two threads at once).
    """

    def __init__(self, obj: Any):
        self._blob = pickler.dumps(obj)

    def load(self) -> Any:
        return pickler.loads(self._blob)

    def __call__(self, *args: Any) -> Any:
        return self.load()(*args)


def _values(partition: Iterable[_Shipped]) -> list:
    return [value for shipped in partition for value in shipped.load()]


def _read_bundles(partition: Iterable[_Shipped]) -> list:
    bundles = [shipped.load() for shipped in partition]
    return [value for b in bundles for value in b.source.read(b.source.get_range_tracker(b.start_position,
                                                                                          b.stop_position))]


def _ship(values: list, partitions: int) -> list[_Shipped]:
    """`values` cut into `partitions` contiguous chunks, each shipped as one object."""
    step = -(-len(values) // partitions) if values else 1
    return [_Shipped(values[i:i + step]) for i in range(0, len(values), step)] or [_Shipped([])]


def _concat(*partitions: list) -> list:
    return [value for partition in partitions for value in partition]


def _grouped(item: tuple) -> tuple:
    key, pairs = item
    return key, [v for _, v in pairs]


def _drained(partition: Iterable) -> list:
    for _ in partition:  # the elements are computed (and written) on the worker; none travel back
        pass
    return []


class _Replace(PTransformOverride):
    """Replaces every transform of exactly `cls` (nested ones too) with `make(transform)`."""

    def __init__(self, cls: type, make: Callable[[Any], beam.PTransform]):
        self._cls, self._make = cls, make

    def matches(self, applied_ptransform: AppliedPTransform) -> bool:
        return applied_ptransform.transform.__class__ == self._cls

    def get_replacement_transform_for_applied_ptransform(self, applied_ptransform: AppliedPTransform):
        return self._make(applied_ptransform.transform)


OVERRIDES = [
    _Replace(beam.Create, lambda t: _Create(t.values)),
    _Replace(beam.Reshuffle, lambda t: _Reshuffle()),
    _Replace(beam.io.Read, lambda t: _Read(t.source)),
    # Global window only, so the group is the key's values: no ReifyWindows / GroupAlsoByWindow.
    _Replace(beam.GroupByKey, lambda t: _GroupByKeyOnly()),
    _Replace(beam.Flatten, lambda t: _Flatten()),
]


class _Translate(PipelineVisitor):
    """Builds one dask bag per PCollection, in the order the pipeline applied its transforms."""

    def __init__(self, partitions: int, partition_size: int | None):
        self.bags: dict[pvalue.PCollection, Any] = {}
        self.consumed: set[pvalue.PCollection] = set()
        self._partitions, self._partition_size = partitions, partition_size

    def visit_transform(self, node: AppliedPTransform) -> None:
        import dask.bag as db

        t = node.transform
        inputs = [i for i in node.main_inputs.values() if isinstance(i, pvalue.PCollection)]
        self.consumed.update(inputs)
        self.consumed.update(si.pvalue for si in node.side_inputs)
        outputs = {tag: pc for tag, pc in node.outputs.items() if isinstance(pc, pvalue.PCollection)}
        if isinstance(t, _Create):
            values = list(t.values)
            chunks = (-(-len(values) // self._partition_size) if self._partition_size
                      else min(len(values), self._partitions))
            shipped = _ship(values, max(1, chunks))
            bag = db.from_sequence(shipped, npartitions=len(shipped)).map_partitions(_values)
        elif isinstance(t, beam.Impulse):
            bag = db.from_sequence([b""], npartitions=1)
        elif isinstance(t, _Read):
            bundles = [_Shipped(b) for b in t.source.split(desired_bundle_size=SOURCE_BUNDLE_BYTES)]
            bag = db.from_sequence(bundles, npartitions=max(1, len(bundles))).map_partitions(_read_bundles)
        elif isinstance(t, _Flatten):
            bag = db.concat([self.bags[i] for i in inputs]) if inputs else db.from_sequence([], npartitions=1)
        elif isinstance(t, _Reshuffle):
            source = self.bags[inputs[0]]
            bag = source.repartition(npartitions=max(source.npartitions, self._partitions))
        elif isinstance(t, _GroupByKeyOnly):
            self._check_global(node, inputs[0])
            source = self.bags[inputs[0]]
            bag = source.groupby(lambda kv: kv[0], npartitions=max(source.npartitions, self._partitions),
                                 shuffle="tasks").map(_grouped)
        elif isinstance(t, beam.ParDo):
            self._pardo(node, inputs[0], outputs)
            return
        else:
            raise DaskRunnerError(f"the Dask runner cannot run {node.full_label!r} "
                                  f"({type(t).__name__}): not a batch primitive it translates")
        for pc in outputs.values():
            self.bags[pc] = bag

    def _check_global(self, node: AppliedPTransform, pcoll: pvalue.PCollection) -> None:
        if not isinstance(pcoll.windowing.windowfn, window.GlobalWindows):
            raise DaskRunnerError(f"the Dask runner cannot run {node.full_label!r}: only the global "
                                  f"window is supported, not {type(pcoll.windowing.windowfn).__name__}")

    def _pardo(self, node: AppliedPTransform, main: pvalue.PCollection,
               outputs: dict[str | None, pvalue.PCollection]) -> None:
        import dask

        t = node.transform
        signature = DoFnSignature(t.fn)
        if signature.is_stateful_dofn() or signature.is_splittable_dofn():
            kind = "state or timers" if signature.is_stateful_dofn() else "a splittable DoFn"
            raise DaskRunnerError(f"the Dask runner cannot run {node.full_label!r}: it uses {kind}")
        args, kwargs = t.raw_side_inputs
        call = _Shipped(_DoFnCall(t.fn, node.full_label, tuple(args), dict(kwargs),
                                  [(type(si), si._view_options()) for si in node.side_inputs]))  # pylint: disable=protected-access
        # A side input is one computed list, broadcast to every partition (Beam's runner recomputes
        # the side input's whole upstream graph inside each task that reads it).
        # Built from the partitions' own keys: handing dask the bag would optimise (rename) its graph,
        # and the transform would run once for the main input and again for the side input.
        side = [dask.delayed(_concat, pure=True)(*self.bags[si.pvalue].to_delayed(optimize_graph=False))
                for si in node.side_inputs]
        tagged = self.bags[main].map_partitions(call, *side)
        for tag, pc in outputs.items():
            if len(outputs) == 1:
                self.bags[pc] = tagged.map(lambda pair: pair[1])
            else:
                self.bags[pc] = tagged.filter(lambda pair, tag=tag: pair[0] == tag).map(lambda pair: pair[1])

    def sinks(self) -> Any:
        """One bag draining every PCollection nothing reads: computing it runs the whole pipeline.

        One collection, so dask optimises (fuses) the whole graph at once: optimised one collection
        at a time, a transform read by two sinks would be fused into both and run twice.
        """
        import dask.bag as db

        return db.concat([bag.map_partitions(_drained) for pc, bag in self.bags.items() if pc not in self.consumed])


class DaskRunnerResult(beam_dask.DaskRunnerResult):
    """Beam's result, closing the client when the run ends (a component's run owns its client)."""

    def wait_until_finish(self, duration=None) -> str:
        try:
            return super().wait_until_finish(duration)
        finally:
            if self._state in (PipelineState.DONE, PipelineState.FAILED):
                self.client.close()


class DaskRunner(beam_dask.DaskRunner):
    """Runs a batch Beam pipeline on the dask.distributed cluster named by --dask_client_address
    (without one, dask starts a LocalCluster in this process's machine)."""

    def run_pipeline(self, pipeline: beam.Pipeline, options) -> DaskRunnerResult:
        import dask.distributed as ddist

        dask_options = options.view_as(beam_dask.DaskOptions).get_all_options(drop_default=True, current_only=True)
        bag_kwargs = beam_dask.DaskOptions._extract_bag_kwargs(dask_options)  # pylint: disable=protected-access
        client = ddist.Client(**dask_options)
        try:
            # Partitions after a shuffle (--dask_npartitions): a few per worker thread, so every worker has
            # work queued. A partition is a list in one worker's memory: one DPED phone's examples are
            # about 3 GB, so more than a few workers' worth of data wants a larger --dask_npartitions.
            partitions = bag_kwargs.get("npartitions") or max(MIN_PARTITIONS, 4 * sum(client.nthreads().values()))
            pipeline.replace_all(OVERRIDES)
            translate = _Translate(partitions, bag_kwargs.get("partition_size"))
            pipeline.visit(translate)
            futures = [client.compute(translate.sinks())]
        except BaseException:
            client.close()
            raise
        return DaskRunnerResult(client, futures)

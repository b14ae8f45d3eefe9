"""The plan for streaming a photo through an instance-normalized Keras generator (export/stream_spec.py).

Instance norm (trainer/instance_norm.py, aiff22/DPED models.py:120-132) needs the mean and
variance of its input over the whole image before one output pixel can be computed, so a tiled
run cannot go from input to output in one sweep. It can in *stages*: every tensor of the functional
graph gets a level, the number of normalizations on the longest path from the input to it

    level(input) = 0;  level(out) = max(level(in) for in of the layer) + (1 if the layer normalizes)

and stage s computes the tensors of level s. Within a stage every layer is local (stride-1 'same'
convolutions, pointwise layers, adds), and each normalization that opens the stage is a known
per-channel affine, because its input was completed, and its statistics accumulated, in stage s - 1.
So a stage runs band by band (export/stream_spec.py), once per image, and what crosses a stage
boundary is stored whole-image: the tensors of level <= s read by a layer of a later level (for
DPED: each normalization's input and the residual skip, two 64-channel arrays).

`plan` walks the graph (depth order of the functional model's nodes, as Keras' own
Functional._run_internal_graph) and returns the stages, with for each the tensors it reads and
stores, the normalizations whose statistics it accumulates, and its halo: the receptive-field
radius from its inputs to what it stores (each stride-1 'same' conv adds ceil((k_eff - 1) / 2),
the padding on its wider side; pointwise layers nothing). Anything else raises NotTileableError.
`Plan.spec` is the same without Keras objects (tensors by name): what the band loop runs and what a
streamable `.tflite` carries (export/tflite_stages.py); `run_nodes` computes a stage's layers, for
TensorFlow (export/streamed_norm.py) and for the stage signatures alike.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any, Callable

import tensorflow as tf
import tf_keras as keras

from phone2dslr.export.stream_spec import StageSpec, StreamSpec
from phone2dslr.export.tiles import NotTileableError
from phone2dslr.trainer.blocks import _POINTWISE, channel_axis_only

# Pointwise in the channel sense only if they keep the spatial size: padding and cropping do not.
_LOCAL_POINTWISE = _POINTWISE - {"ZeroPadding2D", "Cropping2D", "InputLayer"}


@dataclass
class Norm:
    """One call of a normalization layer (it has `fixed_stats(mean, var) -> keras Layer`)."""

    layer: keras.layers.Layer
    input_id: str   # the tensor whose per-channel mean and variance it needs
    output_id: str
    channels: int


@dataclass
class Stage:
    """One sweep over the image: computes the tensors of level `index` from `inputs`.

    nodes: Keras nodes in an order where inputs come first; inputs: tensor ids read whole-image
    (stored by an earlier stage, or the photo); stores: tensor ids of this level kept whole-image
    for later stages; stats: the Norms whose input this stage completes (moments accumulated
    here); opens: the Norms applied in this stage as a fixed affine; final: True if it computes
    the model output; radius: halo rows a band needs on each side (receptive-field radius, px).
    """

    index: int
    nodes: list[Any] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    stores: list[str] = field(default_factory=list)
    stats: list[Norm] = field(default_factory=list)
    opens: list[Norm] = field(default_factory=list)
    final: bool = False
    radius: int = 0


@dataclass
class Plan:
    """The stages of a model, and per tensor id its channel count and the last stage that reads it
    (no reference to the model itself: plans are cached in a WeakKeyDictionary keyed by it)."""

    stages: list[Stage]
    norms: list[Norm]
    input_id: str
    output_id: str
    channels: dict[str, int]
    last_use: dict[str, int]

    def names(self) -> dict[str, str]:
        """Tensor id -> its name in the spec and in a streamable file's signatures: t0, t1, ... in
        graph order (t0 the photo)."""
        return {t: f"t{k}" for k, t in enumerate(self.channels)}

    def norm_index(self) -> dict[int, int]:
        """id(Norm) -> its index in `norms` (how the spec and the signatures name normalizations)."""
        return {id(norm): j for j, norm in enumerate(self.norms)}

    def spec(self) -> StreamSpec:
        """The plan without Keras objects (export/stream_spec.py): tensors by `names`,
        normalizations by `norm_index`."""
        names, index = self.names(), self.norm_index()
        stages = [StageSpec(stage.index, [names[t] for t in stage.inputs], [names[t] for t in stage.stores],
                            [index[id(n)] for n in stage.stats], [index[id(n)] for n in stage.opens], stage.final,
                            stage.radius) for stage in self.stages]
        return StreamSpec(stages, {names[t]: c for t, c in self.channels.items()},
                          {names[t]: s for t, s in self.last_use.items()}, [names[n.input_id] for n in self.norms],
                          names[self.input_id], names[self.output_id])


def layer_reach(layer: keras.layers.Layer) -> int:
    """Rows / columns one output pixel of `layer` reaches on each side (0: pointwise).

    Raises NotTileableError for anything but stride-1 'same' (or 1x1) channels-last 2-D
    convolutions and the size-preserving pointwise layers of trainer.blocks._POINTWISE."""
    name = type(layer).__name__
    if isinstance(layer, keras.Model):
        raise NotTileableError(f"layer {layer.name} is a nested model; streaming needs a flat functional graph")
    if hasattr(layer, "kernel_size") and hasattr(layer, "strides"):
        kernel, strides = tuple(layer.kernel_size), tuple(layer.strides)
        dilation = tuple(getattr(layer, "dilation_rate", (1,) * len(kernel)))
        effective = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        padding = getattr(layer, "padding", "valid")
        if len(kernel) != 2 or getattr(layer, "data_format", "channels_last") != "channels_last" \
                or any(s != 1 for s in strides) or name.endswith("Transpose") \
                or not (padding == "same" or all(k == 1 for k in effective)):
            raise NotTileableError(f"layer {layer.name} ({name}) is not a stride-1 'same' 2-D convolution")
        return max((k - 1) - (k - 1) // 2 for k in effective)  # 'same': the wider side gets k // 2
    if name in _LOCAL_POINTWISE and channel_axis_only(layer):
        return 0
    raise NotTileableError(f"layer {layer.name} ({name}) is neither a stride-1 'same' convolution nor "
                           "pointwise; streaming cannot tell which pixels it mixes")


def _ordered_nodes(model: keras.Model) -> list[Any]:
    """The model's nodes, inputs before the layers that read them (deepest depth first)."""
    nodes = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        nodes.extend(node for node in model._nodes_by_depth[depth] if not node.is_input)
    return nodes


def _build(model: keras.Model) -> Plan:
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise NotTileableError(f"model {model.name} has {len(model.inputs)} inputs and {len(model.outputs)} "
                               "outputs; streaming takes one image in and one out")
    input_id, output_id = str(id(model.inputs[0])), str(id(model.outputs[0]))
    level, channels, reach = {input_id: 0}, {input_id: int(model.inputs[0].shape[-1])}, {input_id: 0}
    norms: list[Norm] = []
    by_level: dict[int, list[Any]] = {}
    for node in _ordered_nodes(model):
        ids = list(node.flat_input_ids)
        if not ids or len(node.flat_output_ids) != 1:
            raise NotTileableError(f"layer {node.layer.name} does not map tensors to one tensor")
        out = node.flat_output_ids[0]
        shape = tuple(node.outputs.shape) if hasattr(node.outputs, "shape") else None
        if shape is None or len(shape) != 4 or shape[-1] is None:
            raise NotTileableError(f"layer {node.layer.name} does not output a [B, H, W, C] image tensor")
        channels[out] = int(shape[-1])
        is_norm = hasattr(node.layer, "fixed_stats")
        if is_norm:
            if len(ids) != 1:
                raise NotTileableError(f"normalization {node.layer.name} takes {len(ids)} tensors")
            norms.append(Norm(node.layer, ids[0], out, channels[ids[0]]))
        level[out] = max(level[i] for i in ids) + int(is_norm)
        reach[out] = 0 if is_norm else layer_reach(node.layer)
        by_level.setdefault(level[out], []).append(node)
    last = max(by_level, default=0)
    if level[output_id] != last:
        raise NotTileableError(f"model {model.name}'s output is computed before its last normalization's "
                               "consumers; streaming writes the output in the last stage")
    stages = [Stage(s) for s in range(last + 1)]
    last_use: dict[str, int] = {}
    for s, nodes in by_level.items():
        stage = stages[s]
        stage.nodes = nodes
        for node in nodes:
            for i in node.flat_input_ids:
                last_use[i] = max(last_use.get(i, -1), s)
                if (level[i] < s or i == input_id) and i not in stage.inputs:
                    stage.inputs.append(i)
    for norm in norms:
        stages[level[norm.input_id]].stats.append(norm)
        if norm.input_id == input_id and input_id not in stages[0].inputs:
            stages[0].inputs.append(input_id)  # a normalization of the photo itself: stage 0 reads it
        stages[level[norm.output_id]].opens.append(norm)
    for t, s in level.items():
        if t != input_id and last_use.get(t, s) > s:
            stages[s].stores.append(t)
    stages[last].final = True
    for stage in stages:
        stage.radius = _stage_radius(stage, reach, output_id)
    return Plan(stages, norms, input_id, output_id, channels, last_use)


def _stage_radius(stage: Stage, reach: dict[str, int], output_id: str) -> int:
    """Halo of a stage: the longest chain of conv reaches from its inputs to what it stores."""
    radius = {i: 0 for i in stage.inputs}
    for node in stage.nodes:
        out = node.flat_output_ids[0]
        radius[out] = reach[out] + max(radius.get(i, 0) for i in node.flat_input_ids)
    needed = stage.stores + [n.input_id for n in stage.stats] + ([output_id] if stage.final else [])
    return max((radius.get(t, 0) for t in needed), default=0)


def _arguments(node: Any, values: dict[str, Any]) -> tuple[tuple, dict]:
    """A node's call arguments with its Keras inputs replaced by computed tensors (as Keras'
    Node.map_arguments, without consuming them: one tensor may feed several layers)."""
    if node._single_positional_tensor_passed:
        return (values[node.flat_input_ids[0]],), {}
    flat = list(node._flat_arguments)
    for tensor_id, index in node._keras_inputs_ids_and_indices:
        flat[index] = values[tensor_id]
    args, kwargs = tf.nest.pack_sequence_as((node.call_args, list(node.call_kwargs.values())), flat)
    return tuple(args), dict(zip(node.call_kwargs.keys(), kwargs))


def run_nodes(stage: Stage, values: dict[str, Any], normalize: Callable[[str, Any], Any]) -> None:
    """Compute the stage's tensors into `values` (tensor id -> tensor; holds its inputs), layer by
    layer in inference mode; a normalization that opens the stage is `normalize(output id, input)`."""
    opening = {norm.output_id for norm in stage.opens}
    for node in stage.nodes:
        out = node.flat_output_ids[0]
        if out in opening:
            values[out] = normalize(out, values[node.flat_input_ids[0]])
            continue
        args, kwargs = _arguments(node, values)
        if getattr(node.layer, "_expects_training_arg", False) and "training" not in kwargs:
            kwargs["training"] = False
        values[out] = node.layer(*args, **kwargs)


_PLANS: "weakref.WeakKeyDictionary[keras.Model, Plan]" = weakref.WeakKeyDictionary()


def plan(model: keras.Model) -> Plan:
    """The stages of a functional Keras generator (cached per model); NotTileableError if it has no plan."""
    if not isinstance(model, keras.Model) or not getattr(model, "_is_graph_network", False):
        raise NotTileableError(f"model {getattr(model, 'name', model)} is not a functional Keras model")
    if model not in _PLANS:
        _PLANS[model] = _build(model)
    return _PLANS[model]

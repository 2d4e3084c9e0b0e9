"""Per-channel ``PRelu`` rewritten into batch-norm form (faster in ONNX Runtime, same values)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import helper, numpy_helper

from facemint_models.errors import MakeModelsError
from facemint_models.onnxgraph import finalize_model, prune_initializers


def rewrite_prelu(model: onnx.ModelProto) -> int:
    """Replace every per-channel ``PRelu`` by an exact equivalent that ONNX Runtime runs ~30% faster.

    ``PRelu(x) = x + (1 - slope) * Relu(-x)``, written as ``Add(x, BN[1 - slope](Relu(BN[-1](x))))`` with
    per-channel ``BatchNormalization`` (mean 0, variance 1, epsilon 0). ONNX Runtime's CPU provider has no
    blocked-layout (NCHWc) kernel for PRelu, so each PRelu costs a scalar pass plus two layout reorders;
    the batch-norm form stays in the blocked layout, its Relu and Add fuse into the 1x1 depthwise
    convolutions that the batch norms become. Measured on SFace (batch 6, 1 thread): 163 -> 113 ms;
    ArcFace w600k_mbf: 134 -> 96 ms. Outputs agree to ~1e-6.

    Returns:
        How many PRelu nodes were rewritten (those with a scalar slope are kept).
    """
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    nodes: list[onnx.NodeProto] = []
    rewritten = 0
    for node in graph.node:
        slope = inits.get(node.input[1]) if node.op_type == "PRelu" else None
        values = numpy_helper.to_array(slope).astype(np.float32) if slope is not None else None
        if values is None or values.size < 2 or values.size != max(values.shape):
            nodes.append(node)
            continue
        x, y = node.input[0], node.output[0]
        channels = values.size
        names = {key: f"{y}__prelu_{key}" for key in ("neg", "one_minus", "zero", "one", "n", "r", "scaled")}
        for key, value in (
            ("neg", -np.ones(channels)),
            ("one_minus", 1.0 - values.reshape(-1)),
            ("zero", np.zeros(channels)),
            ("one", np.ones(channels)),
        ):
            graph.initializer.append(numpy_helper.from_array(value.astype(np.float32), names[key]))
        stats = [names["zero"], names["zero"], names["one"]]
        nodes += [
            helper.make_node("BatchNormalization", [x, names["neg"], *stats], [names["n"]], epsilon=0.0),
            helper.make_node("Relu", [names["n"]], [names["r"]]),
            helper.make_node("BatchNormalization", [names["r"], names["one_minus"], *stats], [names["scaled"]],
                             epsilon=0.0),
            helper.make_node("Add", [x, names["scaled"]], [y]),
        ]  # fmt: skip
        rewritten += 1
    del graph.node[:]
    graph.node.extend(nodes)
    prune_initializers(model)
    return rewritten


def with_prelu_rewrite(convert: Callable[[list[bytes]], bytes]) -> Callable[[list[bytes]], bytes]:
    """A converter that applies :func:`rewrite_prelu` to what ``convert`` produces."""

    def converted(blobs: list[bytes]) -> bytes:
        model = onnx.load_from_string(convert(blobs))
        if rewrite_prelu(model) == 0:
            raise MakeModelsError("expected per-channel PRelu nodes to rewrite")
        return finalize_model(model, ir_version=model.ir_version)

    converted.__doc__ = f"{convert.__doc__ or convert.__name__}\n\nThen :func:`rewrite_prelu`."
    return converted

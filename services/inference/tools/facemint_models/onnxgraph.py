"""ONNX helpers the converters share: deterministic serialisation, symbolic batch dims, a graph builder."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import onnx
from onnx import numpy_helper

from facemint_models.errors import MakeModelsError

Array = npt.NDArray[Any]

TOOL_VERSION = "1"
PRODUCER = "facemint-make-models"


def finalize_model(model: onnx.ModelProto, ir_version: int) -> bytes:
    """Stamp producer fields, check the model and serialise it deterministically."""
    model.ir_version = ir_version
    model.producer_name = PRODUCER
    model.producer_version = TOOL_VERSION
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString(deterministic=True)
    return data


def set_batch_symbolic(value_info: onnx.ValueInfoProto, dim_name: str = "N") -> None:
    """Make dim 0 of a graph input/output symbolic."""
    dim = value_info.type.tensor_type.shape.dim[0]
    dim.Clear()
    dim.dim_param = dim_name


def prune_initializers(model: onnx.ModelProto) -> None:
    """Drop initializers no node or output uses, and weights wrongly declared as graph inputs."""
    graph = model.graph
    used = {i for node in graph.node for i in node.input} | {o.name for o in graph.output}
    keep = [init for init in graph.initializer if init.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)
    names = {init.name for init in keep}
    inputs = [vi for vi in graph.input if vi.name not in names and (vi.name in used)]
    del graph.input[:]
    graph.input.extend(inputs)


class GraphBuilder:
    """A small helper to emit an ONNX graph node by node with named initializers."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._names: set[str] = set()

    def const(self, name: str, value: Array) -> str:
        """Add an initializer (float32 or int64) and return its name."""
        if name in self._names:
            raise MakeModelsError(f"duplicate initializer {name}")
        self._names.add(name)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def node(self, op: str, inputs: Sequence[str], output: str, **attrs: Any) -> str:
        """Add a single-output node; the output tensor and the node share ``output`` as name."""
        self.nodes.append(onnx.helper.make_node(op, list(inputs), [output], name=output, **attrs))
        return output

    def model(
        self,
        name: str,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        doc: str,
        opset: int = 13,
    ) -> onnx.ModelProto:
        """Assemble a ModelProto."""
        graph = onnx.helper.make_graph(self.nodes, name, inputs, outputs, initializer=self.initializers)
        model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", opset)], doc_string=doc)
        return model


def same_pads(size: int, kernel: int, stride: int, dilation: int = 1) -> tuple[int, int]:
    """TensorFlow 'SAME' padding (the extra pixel goes at the end) for one spatial axis."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def conv_out(size: int, kernel: int, stride: int, pad: int, dilation: int = 1) -> int:
    """Output length of a convolution / pooling along one axis."""
    return (size + pad - (kernel - 1) * dilation - 1) // stride + 1

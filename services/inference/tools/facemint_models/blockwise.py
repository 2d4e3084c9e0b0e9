"""YuNet and SFace: int8 block-quantised ``DequantizeLinear`` weights folded into fp32, batch made symbolic."""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import numpy_helper

from facemint_models.errors import MakeModelsError
from facemint_models.onnxgraph import Array, finalize_model, prune_initializers, set_batch_symbolic


def dequantize(q: Array, scale: Array, zero_point: Array | None, axis: int, block_size: int) -> Array:
    """Evaluate ONNX DequantizeLinear (per-tensor, per-axis or blocked) in float32."""
    qi = q.astype(np.int32)
    zp = np.zeros_like(scale, dtype=np.int32) if zero_point is None else zero_point.astype(np.int32)
    axis = axis % max(q.ndim, 1)
    if scale.ndim == 0 or (scale.size == 1 and block_size == 0):
        return ((qi - zp.reshape(())).astype(np.float32) * scale.reshape(()).astype(np.float32)).astype(np.float32)
    if block_size == 0:  # per-axis
        shape = [1] * q.ndim
        shape[axis] = -1
        scale_b, zp_b = scale.reshape(shape), zp.reshape(shape)
    else:  # blocked: expand each scale over its block along `axis`
        length = q.shape[axis]
        if scale.shape[axis] != math.ceil(length / block_size):
            raise MakeModelsError(f"DequantizeLinear: scale shape {scale.shape} does not fit {q.shape}/{block_size}")
        index = np.arange(length) // block_size
        scale_b, zp_b = np.take(scale, index, axis=axis), np.take(zp, index, axis=axis)
    return ((qi - zp_b).astype(np.float32) * scale_b.astype(np.float32)).astype(np.float32)


def fold_constants(model: onnx.ModelProto) -> int:
    """Fold DequantizeLinear and Reshape nodes whose inputs are all initializers; return the count."""
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    folded = 0
    kept = []
    for node in graph.node:
        if node.op_type not in ("DequantizeLinear", "Reshape") or not all(i in inits for i in node.input if i):
            kept.append(node)
            continue
        data, second = numpy_helper.to_array(inits[node.input[0]]), numpy_helper.to_array(inits[node.input[1]])
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type == "DequantizeLinear":
            has_zero_point = len(node.input) > 2 and node.input[2]
            zero_point = numpy_helper.to_array(inits[node.input[2]]) if has_zero_point else None
            value = dequantize(data, second, zero_point, int(attrs.get("axis", 1)), int(attrs.get("block_size", 0)))
        else:
            if attrs.get("allowzero", 0):
                raise MakeModelsError(f"Reshape {node.name}: allowzero is not supported by the folder")
            target = [data.shape[k] if d == 0 else int(d) for k, d in enumerate(second)]
            value = data.reshape(target)
        new_init = numpy_helper.from_array(np.ascontiguousarray(value), node.output[0])
        graph.initializer.append(new_init)
        inits[node.output[0]] = new_init
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    prune_initializers(model)
    return folded


def convert_fold_blockwise(blobs: list[bytes]) -> bytes:
    """Fold block-quantised weights (YuNet, SFace) into fp32 and make the batch dimension symbolic.

    ONNX Runtime rejects these files (``block_size must be 0 for per-tensor``). All DequantizeLinear
    and weight-reshape nodes only read initializers, so they are evaluated once here. Weights that
    the graph also lists as inputs (SFace) are removed from the inputs. YuNet's output heads reshape
    to ``[1, -1, C]``; the leading 1 becomes 0 ("copy the batch dim") so batches work.
    """
    model = onnx.load_from_string(blobs[0])
    folded = fold_constants(model)
    if folded == 0 or any(n.op_type == "DequantizeLinear" for n in model.graph.node):
        raise MakeModelsError("expected block-quantised weights to fold")
    graph = model.graph
    inits = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Reshape" and node.input[1] in inits:
            target = numpy_helper.to_array(inits[node.input[1]])
            if target.ndim == 1 and target.size >= 2 and target[0] == 1 and -1 in target[1:]:
                fixed = target.copy()
                fixed[0] = 0
                inits[node.input[1]].CopyFrom(numpy_helper.from_array(fixed, node.input[1]))
    del graph.value_info[:]
    for value_info in list(graph.input) + list(graph.output):
        set_batch_symbolic(value_info)
    return finalize_model(model, ir_version=10)


def convert_yunet(blobs: list[bytes]) -> bytes:
    """YuNet: :func:`convert_fold_blockwise`, then the input's height and width made symbolic too.

    The network is fully convolutional (its two upsamplings are scale-based), so it runs on any multiple of 32.
    The in-process runner then feeds a 1080p frame as 640 x 384 instead of a 640 x 640 letterbox that is 44%
    black (~35% less detector time); Triton keeps the square input its config declares.
    """
    model = onnx.load_from_string(convert_fold_blockwise(blobs))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[2].dim_param, dims[3].dim_param = "H", "W"
    for output in model.graph.output:
        output.type.tensor_type.shape.dim[1].dim_param = "A"
    return finalize_model(model, ir_version=model.ir_version)

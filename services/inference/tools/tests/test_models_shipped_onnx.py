"""Converters of shipped ONNX files, on tiny graphs built here with ``onnx.helper``: block-quantised weights folded
(YuNet, SFace), batch dimensions made symbolic (ArcFace, 2d106det), per-channel PRelu rewritten."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from converter_reference import Array, run_onnx
from facemint_models.blockwise import convert_fold_blockwise, convert_yunet
from facemint_models.errors import MakeModelsError
from facemint_models.prelu import with_prelu_rewrite
from facemint_models.shipped import convert_as_shipped, convert_symbolic_batch
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(3)
BLOCK = 2


def tensor(name: str, value: Array) -> onnx.TensorProto:
    return numpy_helper.from_array(value, name)


def blockwise_model(weights_as_input: bool = False) -> tuple[bytes, dict[str, Array]]:
    """input [1, 4, 3, 3] -> Conv 1x1 whose weight is DequantizeLinear(int8 [6, 4], block_size 2 along axis 1) then
    Reshape [6, 4, 1, 1] -> Transpose to NHWC -> Reshape [1, -1, 6] (YuNet's head) -> output [1, 9, 6]."""
    q = RNG.integers(-128, 128, (6, 4), dtype=np.int8)
    scale = RNG.uniform(0.01, 0.1, (6, 4 // BLOCK)).astype(np.float32)
    zero = RNG.integers(-5, 5, (6, 4 // BLOCK), dtype=np.int8)
    bias = RNG.normal(size=6).astype(np.float32)
    nodes = [
        helper.make_node("DequantizeLinear", ["q", "scale", "zero"], ["w2d"], axis=1, block_size=BLOCK),
        helper.make_node("Reshape", ["w2d", "w_shape"], ["w"]),
        helper.make_node("Conv", ["input", "w", "bias"], ["conv"], kernel_shape=[1, 1]),
        helper.make_node("Transpose", ["conv"], ["nhwc"], perm=[0, 2, 3, 1]),
        helper.make_node("Reshape", ["nhwc", "head_shape"], ["output"]),
    ]
    inits = [
        tensor("q", q),
        tensor("scale", scale),
        tensor("zero", zero),
        tensor("bias", bias),
        tensor("w_shape", np.array([6, 4, 1, 1], np.int64)),
        tensor("head_shape", np.array([1, -1, 6], np.int64)),
    ]
    inputs = [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 4, 3, 3])]
    if weights_as_input:  # SFace lists its weights among the graph inputs too
        inputs.append(helper.make_tensor_value_info("q", TensorProto.INT8, [6, 4]))
        inputs.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, [6]))
    graph = helper.make_graph(
        nodes,
        "blockwise",
        inputs,
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 9, 6])],
        initializer=inits,
        value_info=[helper.make_tensor_value_info("conv", TensorProto.FLOAT, [1, 6, 3, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    return model.SerializeToString(), {"q": q, "scale": scale, "zero": zero, "bias": bias}


def blockwise_reference(x: Array, p: dict[str, Array]) -> Array:
    """(q - zero) * scale with each scale/zero covering BLOCK consecutive input channels, then the 1x1 conv."""
    blocks = np.arange(4) // BLOCK
    weight = (p["q"].astype(np.float32) - p["zero"][:, blocks]) * p["scale"][:, blocks]  # [6, 4]
    y = np.einsum("nchw,oc->nhwo", x, weight) + p["bias"]
    return y.reshape(len(x), -1, 6)


def test_block_quantised_weights_fold_into_float_and_the_batch_becomes_symbolic() -> None:
    data, params = blockwise_model(weights_as_input=True)
    x = RNG.normal(size=(3, 4, 3, 3)).astype(np.float32)

    converted = onnx.load_from_string(convert_fold_blockwise([data]))
    (out,) = run_onnx(converted.SerializeToString(), {"input": x})

    assert {n.op_type for n in converted.graph.node} == {"Conv", "Transpose", "Reshape"}
    assert [vi.name for vi in converted.graph.input] == ["input"]
    assert converted.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "N"
    np.testing.assert_allclose(out, blockwise_reference(x, params), rtol=1e-5, atol=1e-5)


def test_yunet_also_takes_any_input_size() -> None:
    data, params = blockwise_model()
    x = RNG.normal(size=(2, 4, 5, 2)).astype(np.float32)

    (out,) = run_onnx(convert_yunet([data]), {"input": x})

    assert out.shape == (2, 10, 6)
    np.testing.assert_allclose(out, blockwise_reference(x, params), rtol=1e-5, atol=1e-5)


def test_a_graph_without_block_quantised_weights_is_refused() -> None:
    data = symbolic_batch_model()[0]

    with pytest.raises(MakeModelsError, match="block-quantised"):
        convert_fold_blockwise([data])


def symbolic_batch_model() -> tuple[bytes, Array]:
    """input [1, 3] -> MatMul [3, 5] -> Relu -> output declared [1, 5] (as ArcFace declares its embedding)."""
    weight = RNG.normal(size=(3, 5)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["input", "w"], ["mm"]), helper.make_node("Relu", ["mm"], ["output"])],
        "fixed_batch",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 5])],
        initializer=[tensor("w", weight)],
        value_info=[helper.make_tensor_value_info("mm", TensorProto.FLOAT, [1, 5])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString(), weight


def test_a_fixed_batch_dimension_becomes_symbolic() -> None:
    data, weight = symbolic_batch_model()
    x = RNG.normal(size=(4, 3)).astype(np.float32)

    converted = convert_symbolic_batch([data])
    (out,) = run_onnx(converted, {"input": x})

    model = onnx.load_from_string(converted)
    assert [vi.type.tensor_type.shape.dim[0].dim_param for vi in [*model.graph.input, *model.graph.output]] == ["N"] * 2
    np.testing.assert_allclose(out, np.maximum(x @ weight, 0), rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="(?i)dimension|shape"):
        run_onnx(convert_as_shipped([data]), {"input": x})  # as shipped, a batch of 4 is refused


def prelu_model(slope: Array) -> tuple[bytes, Array]:
    """input [N, 3, 2, 2] -> Conv 1x1 -> PRelu(slope) -> output."""
    conv_w = RNG.normal(size=(3, 3, 1, 1)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Conv", ["input", "conv_w"], ["conv"], kernel_shape=[1, 1]),
            helper.make_node("PRelu", ["conv", "slope"], ["output"]),
        ],
        "prelu",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 2, 2])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 2, 2])],
        initializer=[tensor("conv_w", conv_w), tensor("slope", slope)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    return model.SerializeToString(), conv_w


def test_per_channel_prelu_is_rewritten_with_the_same_values() -> None:
    slope = np.array([0.1, -0.5, 2.0], np.float32).reshape(3, 1, 1)
    data, conv_w = prelu_model(slope)
    x = RNG.normal(size=(2, 3, 2, 2)).astype(np.float32)

    rewritten = with_prelu_rewrite(convert_as_shipped)([data])
    (out,) = run_onnx(rewritten, {"input": x})

    assert "PRelu" not in {n.op_type for n in onnx.load_from_string(rewritten).graph.node}
    conv = np.einsum("nchw,oc->nohw", x, conv_w[:, :, 0, 0])
    assert (conv < 0).any() and (conv > 0).any()
    np.testing.assert_allclose(out, np.where(conv >= 0, conv, slope * conv), rtol=1e-5, atol=1e-6)


def test_a_graph_with_only_a_scalar_prelu_slope_is_refused() -> None:
    with pytest.raises(MakeModelsError, match="per-channel PRelu"):
        with_prelu_rewrite(convert_as_shipped)([prelu_model(np.array([0.25], np.float32))[0]])

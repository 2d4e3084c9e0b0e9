"""TFLite -> ONNX: a TFLite flatbuffer written here with the ``flatbuffers`` builder converts to ONNX that computes
what TFLite would (PAD, CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D, fused RELU / RELU6)."""

from __future__ import annotations

from dataclasses import dataclass, field

import flatbuffers
import numpy as np
import pytest
from converter_reference import Array, conv, depthwise, max_pool, run_onnx
from facemint_models.errors import MakeModelsError
from facemint_models.prelu import with_prelu_rewrite
from facemint_models.tflite import TFLiteConverter

RNG = np.random.default_rng(11)
# tensorflow/lite/schema/schema.fbs: BuiltinOperator codes, BuiltinOptions union tags, enums.
ADD, CONV_2D, DEPTHWISE_CONV_2D, MAX_POOL_2D, PAD, PRELU, TANH = 0, 3, 4, 17, 34, 54, 28
CONV_OPTIONS, DEPTHWISE_OPTIONS, POOL_OPTIONS, ADD_OPTIONS = 1, 2, 5, 11
SAME, VALID = 0, 1
NONE, RELU, RELU6 = 0, 1, 3
FLOAT32, INT32 = 0, 2


@dataclass
class Op:
    code: int
    inputs: list[int]
    outputs: list[int]
    options_type: int = 0
    options: dict[int, int] = field(default_factory=dict)  # field slot -> int32/int8 value (see write_options)


@dataclass
class TFLite:
    """A one-subgraph TFLite model to serialise."""

    tensors: list[tuple[str, list[int], int, bytes]] = field(default_factory=list)  # name, shape, type, data
    ops: list[Op] = field(default_factory=list)

    def tensor(self, name: str, shape: list[int], value: Array | None = None) -> int:
        kind = INT32 if value is not None and value.dtype == np.int32 else FLOAT32
        self.tensors.append(
            (name, shape, kind, b"" if value is None else value.astype(value.dtype.newbyteorder("<")).tobytes())
        )
        return len(self.tensors) - 1

    def serialise(self, inputs: list[int], outputs: list[int]) -> bytes:
        b = flatbuffers.Builder(1024)
        b.ForceDefaults(True)

        def vector(offsets: list[int]) -> int:
            b.StartVector(4, len(offsets), 4)
            for offset in reversed(offsets):
                b.PrependUOffsetTRelative(offset)
            return int(b.EndVector())

        def ints(values: list[int]) -> int:
            return int(b.CreateNumpyVector(np.asarray(values, np.int32)))

        # Buffer 0 is the empty sentinel; each constant tensor gets its own buffer.
        buffer_data = [b""] + [data for _, _, _, data in self.tensors if data]
        buffers = []
        for data in buffer_data:
            blob = b.CreateNumpyVector(np.frombuffer(data, np.uint8)) if data else None
            b.StartObject(1)
            if blob is not None:
                b.PrependUOffsetTRelativeSlot(0, blob, 0)
            buffers.append(b.EndObject())
        tensors, next_buffer = [], 1
        for name, shape, kind, data in self.tensors:
            name_offset, shape_offset = b.CreateString(name), ints(shape)
            b.StartObject(4)
            b.PrependUOffsetTRelativeSlot(0, shape_offset, 0)
            b.PrependInt8Slot(1, kind, 0)
            b.PrependUint32Slot(2, next_buffer if data else 0, 0)
            b.PrependUOffsetTRelativeSlot(3, name_offset, 0)
            tensors.append(b.EndObject())
            next_buffer += 1 if data else 0
        codes = sorted({op.code for op in self.ops})
        operators = []
        for op in self.ops:
            options = None
            if op.options_type:
                b.StartObject(max(op.options) + 1)
                for slot, value in op.options.items():
                    (b.PrependInt8Slot if slot in op_byte_slots(op) else b.PrependInt32Slot)(slot, value, 0)
                options = b.EndObject()
            ins, outs = ints(op.inputs), ints(op.outputs)
            b.StartObject(5)
            b.PrependUint32Slot(0, codes.index(op.code), 0)
            b.PrependUOffsetTRelativeSlot(1, ins, 0)
            b.PrependUOffsetTRelativeSlot(2, outs, 0)
            b.PrependUint8Slot(3, op.options_type, 0)
            if options is not None:
                b.PrependUOffsetTRelativeSlot(4, options, 0)
            operators.append(b.EndObject())
        opcodes = []
        for code in codes:
            b.StartObject(4)
            b.PrependInt8Slot(0, min(code, 127), 0)
            b.PrependInt32Slot(3, code, 0)
            opcodes.append(b.EndObject())
        tensor_vec, op_vec, in_vec, out_vec = vector(tensors), vector(operators), ints(inputs), ints(outputs)
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, tensor_vec, 0)
        b.PrependUOffsetTRelativeSlot(1, in_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, out_vec, 0)
        b.PrependUOffsetTRelativeSlot(3, op_vec, 0)
        subgraph = b.EndObject()
        subgraphs, codes_vec, buffers_vec = vector([subgraph]), vector(opcodes), vector(buffers)
        b.StartObject(5)
        b.PrependUint32Slot(0, 3, 0)
        b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
        b.PrependUOffsetTRelativeSlot(2, subgraphs, 0)
        b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
        b.Finish(b.EndObject())
        return bytes(b.Output())


def op_byte_slots(op: Op) -> set[int]:
    """Option fields that are enums (a byte): padding and the fused activation."""
    return {
        CONV_OPTIONS: {0, 3},
        DEPTHWISE_OPTIONS: {0, 4},
        POOL_OPTIONS: {0, 5},
        ADD_OPTIONS: {0},
    }[op.options_type]


def w(*shape: int) -> Array:
    return RNG.normal(size=shape).astype(np.float32)


def tiny_model() -> tuple[bytes, dict[str, Array]]:
    """input [1, 6, 8, 3] -> PAD -> CONV_2D 3x2 (stride 2 x 1, SAME, RELU) = "features" -> DEPTHWISE_CONV_2D
    3x3 (SAME) -> PRELU -> ADD features (RELU6) -> MAX_POOL_2D 2x2 / 2 (VALID) = "pooled"; outputs features, pooled."""
    weights = {
        "paddings": np.array([[0, 0], [1, 0], [0, 2], [0, 0]], np.int32),
        "conv_w": w(4, 3, 2, 3),  # [Cout, KH, KW, Cin]
        "conv_b": w(4),
        "dw_w": w(1, 3, 3, 4),  # [1, KH, KW, C]
        "dw_b": w(4),
        "alpha": RNG.uniform(0.05, 0.5, (1, 1, 4)).astype(np.float32),
    }
    m = TFLite()
    image = m.tensor("image", [1, 6, 8, 3])
    padded = m.tensor("padded", [1, 7, 10, 3])
    features = m.tensor("features", [1, 4, 10, 4])
    dw = m.tensor("dw", [1, 4, 10, 4])
    prelu = m.tensor("prelu", [1, 4, 10, 4])
    added = m.tensor("added", [1, 4, 10, 4])
    pooled = m.tensor("pooled", [1, 2, 5, 4])
    consts = {key: m.tensor(key, list(value.shape), value) for key, value in weights.items()}
    m.ops = [
        Op(PAD, [image, consts["paddings"]], [padded]),
        Op(
            CONV_2D,
            [padded, consts["conv_w"], consts["conv_b"]],
            [features],
            CONV_OPTIONS,
            {0: SAME, 1: 1, 2: 2, 3: RELU},
        ),
        Op(
            DEPTHWISE_CONV_2D,
            [features, consts["dw_w"], consts["dw_b"]],
            [dw],
            DEPTHWISE_OPTIONS,
            {0: SAME, 1: 1, 2: 1, 3: 1, 4: NONE},
        ),
        Op(PRELU, [dw, consts["alpha"]], [prelu]),
        Op(ADD, [prelu, features], [added], ADD_OPTIONS, {0: RELU6}),
        Op(MAX_POOL_2D, [added], [pooled], POOL_OPTIONS, {0: VALID, 1: 2, 2: 2, 3: 2, 4: 2, 5: NONE}),
    ]
    return m.serialise([image], [features, pooled]), weights


def tflite_reference(x: Array, weights: dict[str, Array]) -> tuple[Array, Array]:
    """What TFLite computes for :func:`tiny_model`, in NHWC."""
    y = np.pad(x, weights["paddings"])
    features = np.maximum(conv(y, weights["conv_w"].transpose(1, 2, 3, 0), weights["conv_b"], (2, 1), "same"), 0)
    dw = depthwise(features, weights["dw_w"][0][..., None], weights["dw_b"], (1, 1), "same")
    prelu = np.where(dw >= 0, dw, weights["alpha"] * dw)
    added = np.clip(prelu + features, 0, 6)
    return features, max_pool(added, (2, 2), (2, 2), "valid")


def test_a_tflite_model_converts_to_onnx_that_computes_what_tflite_computes() -> None:
    data, weights = tiny_model()
    x = RNG.normal(size=(3, 6, 8, 3)).astype(np.float32)

    features, pooled = run_onnx(TFLiteConverter(data).convert("tiny", "doc"), {"image": x})

    want_features, want_pooled = tflite_reference(x, weights)
    assert features.shape == (3, 4, 10, 4) and pooled.shape == (3, 2, 5, 4)
    np.testing.assert_allclose(features, want_features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled, want_pooled, rtol=1e-5, atol=1e-5)


def test_the_prelu_rewrite_keeps_the_converted_values() -> None:
    data, weights = tiny_model()
    x = RNG.normal(size=(2, 6, 8, 3)).astype(np.float32)
    convert = with_prelu_rewrite(lambda blobs: TFLiteConverter(blobs[0]).convert("tiny", "doc"))

    model = convert([data])
    features, pooled = run_onnx(model, {"image": x})

    assert b"PRelu" not in model
    want_features, want_pooled = tflite_reference(x, weights)
    np.testing.assert_allclose(features, want_features, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled, want_pooled, rtol=1e-5, atol=1e-5)


def test_an_unsupported_operator_is_named() -> None:
    m = TFLite()
    image, out = m.tensor("image", [1, 2, 2, 1]), m.tensor("out", [1, 2, 2, 1])
    m.ops = [Op(TANH, [image], [out])]

    with pytest.raises(MakeModelsError, match=f"operator {TANH} \\(out\\)"):
        TFLiteConverter(m.serialise([image], [out])).convert("t", "d")

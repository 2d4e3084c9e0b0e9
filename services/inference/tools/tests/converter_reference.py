"""NumPy references for the converter tests: TensorFlow's NHWC semantics written out plainly, independent of ONNX."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

Array = npt.NDArray[Any]


def tf_same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow 'SAME': output ceil(size / stride), the odd padding pixel after the data."""
    out = (size + stride - 1) // stride
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def pad_nhwc(x: Array, kernel: tuple[int, int], strides: tuple[int, int], padding: str) -> Array:
    """Zero-pad the spatial axes of an NHWC batch for a 'same' or 'valid' window."""
    if padding == "valid":
        return x
    (t, b), (le, r) = tf_same_pad(x.shape[1], kernel[0], strides[0]), tf_same_pad(x.shape[2], kernel[1], strides[1])
    return np.pad(x, ((0, 0), (t, b), (le, r), (0, 0)))


def windows(x: Array, kernel: tuple[int, int], strides: tuple[int, int]) -> Array:
    """All windows of an NHWC batch: [N, OH, OW, KH, KW, C]."""
    n, h, w, c = x.shape
    oh, ow = (h - kernel[0]) // strides[0] + 1, (w - kernel[1]) // strides[1] + 1
    out = np.empty((n, oh, ow, kernel[0], kernel[1], c), x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, i, j] = x[
                :, i * strides[0] : i * strides[0] + kernel[0], j * strides[1] : j * strides[1] + kernel[1]
            ]
    return out


def conv(x: Array, kernel: Array, bias: Array | None, strides: tuple[int, int], padding: str) -> Array:
    """Conv2D with a Keras kernel [KH, KW, Cin, Cout]."""
    patches = windows(pad_nhwc(x, kernel.shape[:2], strides, padding), kernel.shape[:2], strides)
    y = np.einsum("nijhwc,hwco->nijo", patches, kernel)
    return y if bias is None else y + bias


def depthwise(x: Array, kernel: Array, bias: Array | None, strides: tuple[int, int], padding: str) -> Array:
    """DepthwiseConv2D with a Keras kernel [KH, KW, Cin, M]; output channel c * M + m."""
    patches = windows(pad_nhwc(x, kernel.shape[:2], strides, padding), kernel.shape[:2], strides)
    y = np.einsum("nijhwc,hwcm->nijcm", patches, kernel).reshape(*patches.shape[:3], -1)
    return y if bias is None else y + bias


def max_pool(x: Array, size: tuple[int, int], strides: tuple[int, int], padding: str) -> Array:
    """MaxPooling2D ('same' pads with -inf as TensorFlow does)."""
    if padding == "same":
        (t, b), (le, r) = tf_same_pad(x.shape[1], size[0], strides[0]), tf_same_pad(x.shape[2], size[1], strides[1])
        x = np.pad(x, ((0, 0), (t, b), (le, r), (0, 0)), constant_values=-np.inf)
    return windows(x, size, strides).max(axis=(3, 4))


def softmax(x: Array) -> Array:
    """Softmax over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def run_onnx(model: bytes, feed: dict[str, Array]) -> list[Array]:
    """Run serialised ONNX on the CPU and return every output."""
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return [np.asarray(value) for value in session.run(None, feed)]

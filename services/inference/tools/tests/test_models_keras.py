"""Keras HDF5 -> ONNX: a small generated Keras 2 model converts to ONNX that computes what Keras would."""

from __future__ import annotations

import io
import json
from typing import Any

import h5py
import numpy as np
import onnx
import pytest
from converter_reference import Array, conv, depthwise, max_pool, run_onnx, softmax
from facemint_models.errors import MakeModelsError
from facemint_models.keras import KerasConverter

RNG = np.random.default_rng(7)
INPUT_SHAPE = (9, 6, 2)  # H != W and odd, so 'same' padding is uneven and any H/W swap shows


def layer(kind: str, name: str, sources: list[str], **config: Any) -> dict[str, Any]:
    """One layer of a Keras 2 functional model config."""
    inbound = [[[source, 0, 0, {}] for source in sources]] if sources else []
    return {"class_name": kind, "name": name, "config": {"name": name, **config}, "inbound_nodes": inbound}


def hdf5(layers: list[dict[str, Any]], outputs: list[str], weights: dict[str, dict[str, Array]]) -> bytes:
    """Write a Keras 2 style HDF5 file: the model config as JSON plus ``model_weights/<layer>/<layer>/<w>:0``."""
    config = {
        "class_name": "Model",
        "config": {"name": "tiny", "layers": layers, "output_layers": [[o, 0, 0] for o in outputs]},
    }
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.attrs["model_config"] = json.dumps(config).encode()
        group = h5.create_group("model_weights")
        group.attrs["layer_names"] = [name.encode() for name in weights]
        for name, values in weights.items():
            sub = group.create_group(name)
            sub.attrs["weight_names"] = [f"{name}/{key}:0".encode() for key in values]
            for key, value in values.items():
                sub.create_dataset(f"{name}/{key}:0", data=value)
    return buffer.getvalue()


def w(*shape: int) -> Array:
    return RNG.normal(size=shape).astype(np.float32)


def tiny_model() -> tuple[bytes, dict[str, dict[str, Array]]]:
    """Conv2D (relu) -> BatchNorm -> ZeroPadding2D -> DepthwiseConv2D (x2) -> SeparableConv2D + skip Add
    -> MaxPooling2D -> Dropout -> Flatten -> Dense (softmax)."""
    weights = {
        "conv": {"kernel": w(3, 2, 2, 3), "bias": w(3)},
        "bn": {
            "gamma": w(3),
            "beta": w(3),
            "moving_mean": w(3),
            "moving_variance": RNG.uniform(0.5, 2, 3).astype(np.float32),
        },
        "dw": {"depthwise_kernel": w(3, 3, 3, 2), "bias": w(6)},
        "sep": {"depthwise_kernel": w(3, 3, 6, 1), "pointwise_kernel": w(1, 1, 6, 6), "bias": w(6)},
        "dense": {"kernel": w(3 * 3 * 6, 4), "bias": w(4)},
    }
    same, valid = "same", "valid"
    layers = [
        layer("InputLayer", "image", [], batch_input_shape=[None, *INPUT_SHAPE]),
        layer("Conv2D", "conv", ["image"], strides=[2, 1], padding=same, activation="relu", dilation_rate=[1, 1]),
        layer("BatchNormalization", "bn", ["conv"], axis=-1, epsilon=1e-3),
        layer("ZeroPadding2D", "pad", ["bn"], padding=[[1, 0], [0, 2]]),
        layer("DepthwiseConv2D", "dw", ["pad"], strides=[1, 1], padding=valid, activation="linear"),
        layer("SeparableConv2D", "sep", ["dw"], strides=[1, 1], padding=same, activation="tanh"),
        layer("Add", "skip", ["sep", "dw"]),
        layer("MaxPooling2D", "pool", ["skip"], pool_size=[2, 2], strides=[1, 2], padding=valid),
        layer("Dropout", "drop", ["pool"], rate=0.5),
        layer("Flatten", "flat", ["drop"]),
        layer("Dense", "dense", ["flat"], activation="softmax", use_bias=True),
    ]
    return hdf5(layers, ["dense"], weights), weights


def keras_reference(x: Array, weights: dict[str, dict[str, Array]]) -> Array:
    """What Keras computes for :func:`tiny_model`, in NHWC."""
    y = np.maximum(conv(x, weights["conv"]["kernel"], weights["conv"]["bias"], (2, 1), "same"), 0)
    bn = weights["bn"]
    y = (y - bn["moving_mean"]) / np.sqrt(bn["moving_variance"] + 1e-3) * bn["gamma"] + bn["beta"]
    y = np.pad(y, ((0, 0), (1, 0), (0, 2), (0, 0)))
    dw = depthwise(y, weights["dw"]["depthwise_kernel"], weights["dw"]["bias"], (1, 1), "valid")
    sep = weights["sep"]
    y = depthwise(dw, sep["depthwise_kernel"], None, (1, 1), "same")
    y = np.tanh(conv(y, sep["pointwise_kernel"], sep["bias"], (1, 1), "valid")) + dw
    y = max_pool(y, (2, 2), (1, 2), "valid")
    flat = y.reshape(len(y), -1)  # Keras flattens H, W, C
    return softmax(flat @ weights["dense"]["kernel"] + weights["dense"]["bias"])


def test_a_keras_model_converts_to_onnx_that_computes_what_keras_computes() -> None:
    data, weights = tiny_model()
    x = RNG.normal(size=(3, *INPUT_SHAPE)).astype(np.float32)

    model = KerasConverter(data).convert("tiny", "a generated test model")
    (probabilities,) = run_onnx(model, {"image": x})

    expected = keras_reference(x, weights)
    assert probabilities.shape == (3, 4)
    np.testing.assert_allclose(probabilities, expected, rtol=1e-4, atol=1e-6)


def test_the_conversion_is_byte_for_byte_reproducible() -> None:
    data, _ = tiny_model()

    assert KerasConverter(data).convert("tiny", "doc") == KerasConverter(data).convert("tiny", "doc")


def test_global_pooling_clipped_relu_and_a_whole_map_average_pool() -> None:
    weights = {"conv": {"kernel": w(1, 1, 2, 5), "bias": w(5)}, "dense": {"kernel": w(5, 3), "bias": w(3)}}
    layers = [
        layer("InputLayer", "image", [], batch_input_shape=[None, 4, 3, 2]),
        layer("Conv2D", "conv", ["image"], strides=[1, 1], padding="valid", activation="linear"),
        layer("ReLU", "relu6", ["conv"], max_value=0.5),
        layer("AveragePooling2D", "avg", ["relu6"], pool_size=[4, 3], strides=[4, 3], padding="valid"),
        layer("GlobalAveragePooling2D", "gap", ["avg"]),
        layer("Dense", "dense", ["gap"], activation="sigmoid", use_bias=True),
    ]
    x = RNG.normal(size=(2, 4, 3, 2)).astype(np.float32)

    def reference(x: Array) -> Array:
        y = np.clip(conv(x, weights["conv"]["kernel"], weights["conv"]["bias"], (1, 1), "valid"), 0, 0.5)
        logits = y.mean(axis=(1, 2)) @ weights["dense"]["kernel"] + weights["dense"]["bias"]
        return 1 / (1 + np.exp(-logits))

    (out,) = run_onnx(KerasConverter(hdf5(layers, ["dense"], weights)).convert("t", "d"), {"image": x})

    np.testing.assert_allclose(out, reference(x), rtol=1e-5, atol=1e-6)
    # The whole-map average pool is a global one, so the graph also runs on larger inputs (the mask model is served
    # at 160 px though its Keras input says 224).
    model = onnx.load_from_string(KerasConverter(hdf5(layers, ["dense"], weights)).convert("t", "d"))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    dims[1].dim_value, dims[2].dim_value = 6, 5
    larger = RNG.normal(size=(2, 6, 5, 2)).astype(np.float32)
    (out,) = run_onnx(model.SerializeToString(), {"image": larger})
    np.testing.assert_allclose(out, reference(larger), rtol=1e-5, atol=1e-6)


def test_an_unsupported_layer_is_named() -> None:
    layers = [
        layer("InputLayer", "image", [], batch_input_shape=[None, 4, 4, 1]),
        layer("LSTM", "memory", ["image"]),
    ]
    with pytest.raises(MakeModelsError, match=r"LSTM \(memory\)"):
        KerasConverter(hdf5(layers, ["memory"], {})).convert("t", "d")

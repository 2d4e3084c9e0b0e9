"""Triton Inference Server over gRPC: the same tensors as :class:`OrtRunner`, executed by a Triton server.

In a cluster the server runs NVIDIA's container with the onnxruntime backend (GPU instances) on
``triton-models/``; on one machine it is the Python-backend server from :mod:`facemint_local.triton`. Both expose
the same model names, tensor names, types and ``max_batch_size``, so this runner cannot tell them apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc.aio import MAX_GRPC_MESSAGE_SIZE, InferenceServerClient, KeepAliveOptions
from tritonclient.utils import InferenceServerException, np_to_triton_dtype, triton_to_np_dtype

from facemint_inference.runners.base import ModelSpec, ModelUnavailable, Runner
from facemint_inference.settings import TritonSettings

Array = npt.NDArray[Any]
# gRPC status codes (as tritonclient reports them) meaning "the server or the model cannot serve right now".
_UNAVAILABLE_STATUSES = {"StatusCode.UNAVAILABLE", "StatusCode.NOT_FOUND"}


@dataclass(frozen=True)
class _Tensor:
    """A tensor as the server's model metadata describes it (``-1`` for variable dims, batch included)."""

    datatype: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class _ServedModel:
    """What the server reported about one model: its tensors by name and its batch limit (0: none)."""

    inputs: dict[str, _Tensor]
    outputs: dict[str, _Tensor]
    max_batch_size: int

    def empty_outputs(self) -> dict[str, Array]:
        """Outputs of a batch of zero items (Triton refuses such a request; ONNX Runtime answers it)."""
        return {
            name: np.empty([max(dim, 0) for dim in tensor.shape], dtype=triton_to_np_dtype(tensor.datatype))
            for name, tensor in self.outputs.items()
        }


def _tensors(described: list[dict[str, Any]]) -> dict[str, _Tensor]:
    """Tensors of a model-metadata answer (``as_json``: dims arrive as strings) by name, in the server's order."""
    return {t["name"]: _Tensor(t["datatype"], tuple(int(dim) for dim in t["shape"])) for t in described}


class TritonRunner(Runner):
    """Sends each call to a Triton server with ``tritonclient.grpc.aio``."""

    kind = "triton"

    def __init__(self, settings: TritonSettings) -> None:
        """Create a runner that connects on :meth:`load`.

        Args:
            settings: The server's gRPC address and the deadline of every call.
        """
        self._settings = settings
        self._client: InferenceServerClient | None = None
        self._models: dict[str, _ServedModel] = {}

    def _channel_args(self) -> list[tuple[str, Any]]:
        """tritonclient's own channel defaults (message size, keepalive), which ``channel_args`` replaces, plus the
        load-balancing policy."""
        keepalive = KeepAliveOptions()
        return [
            ("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data),
            ("grpc.lb_policy_name", self._settings.load_balancing),
        ]

    def _unavailable(self, what: str, exc: InferenceServerException) -> ModelUnavailable:
        return ModelUnavailable(f"{what}: Triton at {self._settings.url}: {exc.message()}")

    async def _describe(self, client: InferenceServerClient, name: str) -> _ServedModel:
        timeout = self._settings.timeout_seconds
        if not await client.is_model_ready(name, client_timeout=timeout):
            raise ModelUnavailable(f"{name}: not ready on Triton at {self._settings.url}")
        metadata = await client.get_model_metadata(name, as_json=True, client_timeout=timeout)
        config = await client.get_model_config(name, as_json=True, client_timeout=timeout)
        return _ServedModel(
            inputs=_tensors(metadata["inputs"]),
            outputs=_tensors(metadata["outputs"]),
            max_batch_size=int(config["config"].get("max_batch_size", 0)),
        )

    async def load(self, models: list[ModelSpec]) -> None:
        """Check that the server is live and every model ready; read each model's tensors and batch limit.

        Raises:
            ModelUnavailable: The server cannot be reached or is not live, or a model is missing or not ready
                (one message naming every such model).
        """
        if self._client is None:
            self._client = InferenceServerClient(url=self._settings.url, channel_args=self._channel_args())
        client = self._client
        try:
            live = await client.is_server_live(client_timeout=self._settings.timeout_seconds)
        except InferenceServerException as exc:
            raise self._unavailable("server not reachable", exc) from exc
        if not live:
            raise ModelUnavailable(f"Triton at {self._settings.url} is not live")
        served: dict[str, _ServedModel] = {}
        problems: list[str] = []
        for spec in models:
            try:
                served[spec.name] = await self._describe(client, spec.name)
            except ModelUnavailable as exc:
                problems.append(str(exc))
            except InferenceServerException as exc:
                problems.append(str(self._unavailable(spec.name, exc)))
        if problems:
            raise ModelUnavailable("; ".join(problems))
        self._models = served

    def _checked_batch(self, model: str, served: _ServedModel, inputs: dict[str, Array]) -> int:
        """Validate names and types against the server's metadata; return the batch size (0: unbatched)."""
        if set(inputs) != set(served.inputs):
            raise ValueError(f"{model}: inputs {sorted(inputs)} given, the model takes {sorted(served.inputs)}")
        for name, array in inputs.items():
            wanted = served.inputs[name].datatype
            if np_to_triton_dtype(array.dtype) != wanted:
                raise ValueError(f"{model}: input {name} is {array.dtype}, the model takes {wanted}")
        if served.max_batch_size == 0:
            return 0
        sizes = {array.shape[0] if array.ndim else -1 for array in inputs.values()}
        if len(sizes) != 1 or min(sizes) < 0:
            raise ValueError(f"{model}: every input needs the same batch (first) dimension, got {sorted(sizes)}")
        return sizes.pop()

    async def _infer_once(self, model: str, served: _ServedModel, inputs: dict[str, Array]) -> list[Array]:
        if self._client is None:
            raise ModelUnavailable(f"{model}: the runner is closed")
        request = []
        for name, array in inputs.items():
            tensor = InferInput(name, list(array.shape), served.inputs[name].datatype)
            tensor.set_data_from_numpy(np.ascontiguousarray(array))
            request.append(tensor)
        try:
            result = await self._client.infer(
                model,
                request,
                outputs=[InferRequestedOutput(name) for name in served.outputs],
                client_timeout=self._settings.timeout_seconds,
            )
        except InferenceServerException as exc:
            if exc.status() in _UNAVAILABLE_STATUSES:
                raise self._unavailable(model, exc) from exc
            if exc.status() == "StatusCode.DEADLINE_EXCEEDED":
                raise TimeoutError(f"{model}: no answer from Triton within {self._settings.timeout_seconds} s") from exc
            raise RuntimeError(f"{model}: Triton failed the call: {exc.message()}") from exc
        return [result.as_numpy(name) for name in served.outputs]

    async def infer(self, model: str, inputs: dict[str, Array]) -> dict[str, Array]:
        """Run one model on a batch and return every output by name.

        A batch of zero items returns empty outputs without a call. A batch larger than ``max_batch_size`` is
        split into calls of at most that size, sent concurrently (the server's dynamic batcher may regroup them),
        and the outputs are concatenated in order.

        Raises:
            ModelUnavailable: The model was not loaded, or the server or model stopped serving.
            ValueError: Input names, types or batch sizes do not match the model.
            TimeoutError: The server did not answer within ``timeout_seconds``.
            RuntimeError: The server rejected or failed the call.
        """
        served = self._models.get(model)
        if served is None:
            raise ModelUnavailable(f"{model}: not loaded")
        batch = self._checked_batch(model, served, inputs)
        limit = served.max_batch_size
        if limit and batch == 0:
            return served.empty_outputs()
        if batch <= limit:
            values = await self._infer_once(model, served, inputs)
        else:
            slices = [slice(start, start + limit) for start in range(0, batch, limit)]
            chunks = await asyncio.gather(
                *(
                    self._infer_once(model, served, {name: array[part] for name, array in inputs.items()})
                    for part in slices
                )
            )
            values = [np.concatenate(parts) for parts in zip(*chunks, strict=True)]
        return dict(zip(served.outputs, values, strict=True))

    async def close(self) -> None:
        """Close the gRPC channel and forget the models."""
        self._models.clear()
        if self._client is not None:
            await self._client.close()
            self._client = None

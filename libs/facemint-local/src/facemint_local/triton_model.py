"""Triton Python-backend model that runs one ONNX file with ONNX Runtime (CPU).

This file is a template: :func:`facemint_local.triton.generate_local_repository` copies it unchanged to
``<model>/1/model.py`` of every model in the local repository. Triton's Python-backend stub imports it inside
the separate Triton virtual environment (numpy < 2, onnxruntime), never inside the project's environment.

Everything model-specific comes from the model's ``config.pbtxt``: the ONNX file from the ``onnx_path``
parameter, the ONNX Runtime thread count from ``intra_op_threads``, and the input/output names, types and
``max_batch_size`` from the usual fields. When the dynamic batcher hands over several requests at once, their
inputs are concatenated along the batch axis and run as one ONNX Runtime call, then split back per request.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

Array = npt.NDArray[Any]
_ORT_LOG_ERRORS_ONLY = 3


def _error_response(exc: Exception) -> Any:
    """A response that carries an error message instead of outputs."""
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(str(exc)))


class TritonPythonModel:
    """The class Triton's Python backend instantiates once per model instance."""

    def initialize(self, args: dict[str, str]) -> None:
        """Open the ONNX Runtime session named by the model configuration.

        Args:
            args: Triton's model arguments; ``model_config`` is the configuration as JSON.
        """
        config = json.loads(args["model_config"])
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_threads", "1"))
        options.inter_op_num_threads = 1
        options.log_severity_level = _ORT_LOG_ERRORS_ONLY
        self._session = ort.InferenceSession(
            parameters["onnx_path"], sess_options=options, providers=["CPUExecutionProvider"]
        )
        self._batching = int(config.get("max_batch_size", 0)) > 0
        self._input_names = [tensor["name"] for tensor in config["input"]]
        self._output_types = {
            tensor["name"]: pb_utils.triton_string_to_numpy(tensor["data_type"]) for tensor in config["output"]
        }

    def _run(self, inputs: dict[str, Array]) -> dict[str, Array]:
        values = self._session.run(list(self._output_types), inputs)
        return {
            name: np.ascontiguousarray(value, dtype=dtype)
            for (name, dtype), value in zip(self._output_types.items(), values, strict=True)
        }

    def _response(self, outputs: dict[str, Array]) -> Any:
        return pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, arr) for name, arr in outputs.items()])

    def _stackable(self, batches: list[dict[str, Array]]) -> bool:
        """True when every request's inputs share their non-batch shapes (so they concatenate)."""
        if not self._batching or len(batches) < 2:
            return False
        first = batches[0]
        return all(batch[name].shape[1:] == first[name].shape[1:] for batch in batches for name in self._input_names)

    def execute(self, requests: list[Any]) -> list[Any]:
        """Answer a list of requests (one response each, in order).

        Args:
            requests: The ``pb_utils.InferenceRequest`` objects the scheduler delivered together.

        Returns:
            One ``pb_utils.InferenceResponse`` per request; a failed run becomes an error response.
        """
        batches = [
            {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in self._input_names}
            for request in requests
        ]
        if not self._stackable(batches):
            responses = []
            for batch in batches:
                try:
                    responses.append(self._response(self._run(batch)))
                except Exception as exc:  # ONNX Runtime raises several unrelated types
                    responses.append(_error_response(exc))
            return responses
        merged = {name: np.concatenate([batch[name] for batch in batches]) for name in self._input_names}
        try:
            outputs = self._run(merged)
        except Exception as exc:  # ONNX Runtime raises several unrelated types
            return [_error_response(exc) for _ in requests]
        bounds = np.cumsum([0] + [len(batch[self._input_names[0]]) for batch in batches])
        return [
            self._response({name: value[start:stop] for name, value in outputs.items()})
            for start, stop in zip(bounds[:-1], bounds[1:], strict=True)
        ]

    def finalize(self) -> None:
        """Drop the session when Triton unloads the model."""
        del self._session

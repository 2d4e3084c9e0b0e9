"""Shipped ONNX files served as they are, or with only their batch dimension declared symbolic."""

from __future__ import annotations

import onnx

from facemint_models.onnxgraph import finalize_model, set_batch_symbolic


def convert_as_shipped(blobs: list[bytes]) -> bytes:
    """Serve the file unchanged."""
    return blobs[0]


def convert_symbolic_batch(blobs: list[bytes]) -> bytes:
    """Declare the batch dim of every input and output symbolic (ArcFace w600k_mbf, 2d106det).

    The graphs batch fine, but their outputs are declared ``[1, K]``, which Triton would enforce.
    """
    model = onnx.load_from_string(blobs[0])
    del model.graph.value_info[:]
    for value_info in list(model.graph.input) + list(model.graph.output):
        set_batch_symbolic(value_info)
    return finalize_model(model, ir_version=model.ir_version)

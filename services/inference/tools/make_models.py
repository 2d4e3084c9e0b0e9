#!/usr/bin/env python3
"""Obtain, convert, verify and lay out Facemint's face models as a Triton model repository.

The command line of the ``facemint_models`` package beside this file (``make models`` runs it); what each module
does is in README.md. Usage::

    .venv/bin/python services/inference/tools/make_models.py [--pack open|insightface|all]
        [--out triton-models] [--verify] [--crosscheck] [--update-lock]
"""

import importlib.util
import sys

if importlib.util.find_spec("onnx") is None:  # pragma: no cover - environment problem
    sys.exit("make_models: the 'onnx' package is required (.venv/bin/pip install onnx)")

from facemint_models.cli import main  # noqa: E402  (after the check, which names what is missing)

if __name__ == "__main__":
    sys.exit(main())

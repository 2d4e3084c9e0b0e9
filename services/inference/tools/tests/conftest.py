"""The model tool's tests import ``facemint_models`` from ``services/inference/tools`` (the tool is not installed)."""

import sys
from pathlib import Path

TOOLS = str(Path(__file__).resolve().parents[1])
if TOOLS not in sys.path:
    sys.path.insert(0, TOOLS)

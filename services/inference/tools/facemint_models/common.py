"""What every part of the tool shares: the error the user must act on, the array type."""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

Array = npt.NDArray[Any]


class MakeModelsError(RuntimeError):
    """A failure the user must act on (bad hash, missing package, unsupported graph...)."""

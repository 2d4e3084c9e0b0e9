"""The one error the model tool raises on purpose; the command line prints it and exits with status 1.

::

    RuntimeError
     └── MakeModelsError   a failure the user must act on: a hash that does not match the lock, a package that is
                           not pinned, a download that failed, a graph or layer a converter does not support
"""

from __future__ import annotations


class MakeModelsError(RuntimeError):
    """A failure the user must act on (bad hash, missing package, unsupported graph...)."""

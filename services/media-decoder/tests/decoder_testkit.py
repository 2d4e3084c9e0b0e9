"""Test media made on the spot (Pillow, pillow-heif, PyAV), a local media HTTP server, and an inference test double.

Every generated medium encodes which frame is which in its pixels: frame ``i`` is filled with the gray level
``level(i)``, so a test can tell from the pixels alone which source frame the decoder returned.
"""

from __future__ import annotations

import ipaddress
import struct
import threading
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import grpc
import httpcore
import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import Image

from facemint.common.v1 import common_pb2
from facemint.inference.v1 import inference_pb2, inference_pb2_grpc
from facemint_core.netsafe import IPAddress

PUBLIC_TEST_ADDRESS = "93.184.216.34"


def level(i: int) -> int:
    """The gray level of frame ``i`` (distinct for 0 <= i < 32, far apart enough to survive lossy coding)."""
    return (i * 8) % 256


def gray_level(image: npt.NDArray[np.uint8]) -> int:
    """The mean gray level of a decoded frame, rounded to the nearest frame level."""
    return int(round(float(image.mean()) / 8) * 8) % 256


# --- still images ---------------------------------------------------------------------------------------------


def halves(width: int, height: int) -> Image.Image:
    """An RGB image whose left half is red and right half is blue (shows orientation)."""
    image = Image.new("RGB", (width, height), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, width // 2, height))
    return image


def save_image(path: Path, image: Image.Image, fmt: str, orientation: int | None = None) -> Path:
    """Save an image as JPEG, PNG, WEBP, BMP, HEIF or AVIF, optionally with an EXIF orientation."""
    pillow_heif.register_heif_opener()
    kwargs: dict[str, object] = {}
    if orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = orientation
        kwargs["exif"] = exif.tobytes()
    image.save(path, format=fmt, **kwargs)
    return path


def png_bomb(path: Path, width: int, height: int) -> Path:
    """A valid grayscale PNG of huge dimensions and all-zero pixels: a few hundred KB on disk."""
    row = b"\x00" * (width + 1)  # filter byte + pixels
    compressor = zlib.compressobj(9)
    body = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


def jpeg_with_declared_size(path: Path, width: int, height: int) -> Path:
    """A small JPEG whose SOF header is rewritten to declare ``width`` x ``height`` (the pixel data is not)."""
    save_image(path, Image.new("RGB", (16, 16), (9, 9, 9)), "JPEG")
    data = bytearray(path.read_bytes())
    sof = data.index(b"\xff\xc0")
    struct.pack_into(">HH", data, sof + 5, height, width)
    path.write_bytes(bytes(data))
    return path


# --- animations -------------------------------------------------------------------------------------------------


def animation(path: Path, fmt: str, delays_ms: Sequence[int], size: tuple[int, int] = (64, 48)) -> Path:
    """A GIF, APNG (fmt ``PNG``) or animated WebP whose frame ``i`` has gray level ``level(i)``."""
    frames = [Image.new("RGB", size, (level(i),) * 3) for i in range(len(delays_ms))]
    frames[0].save(path, format=fmt, save_all=True, append_images=frames[1:], duration=list(delays_ms), loop=0)
    return path


# --- video ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VideoSpec:
    """How to encode a test video: codec, container, frames, rate, size, rotation, encoder and muxer options."""

    codec: str = "libx264"
    container: str | None = None
    frames: int = 60
    fps: int = 30
    width: int = 160
    height: int = 96
    rotation: int = 0
    first_pts: int = 0
    """Presentation time of the first frame, in frames (a stream that does not start at 0)."""
    options: dict[str, str] = field(default_factory=dict)
    muxer_options: dict[str, str] = field(default_factory=dict)


def video(path: Path, spec: VideoSpec) -> Path:
    """Encode a video whose frame ``i`` is gray level ``level(i)`` (a bright top-left corner marks orientation)."""
    with av.open(str(path), "w", format=spec.container, options=spec.muxer_options) as out:
        stream = out.add_stream(spec.codec, rate=spec.fps, options=spec.options)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
        if spec.rotation:
            stream.set_display_rotation(spec.rotation)
        for i in range(spec.frames):
            pixels = np.full((spec.height, spec.width, 3), level(i), np.uint8)
            pixels[: spec.height // 4, : spec.width // 4] = 255
            frame = av.VideoFrame.from_ndarray(pixels, format="rgb24")
            if spec.first_pts:
                frame.pts = spec.first_pts + i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


# --- HTTP -------------------------------------------------------------------------------------------------------


@dataclass
class Route:
    """What the media server does for one path.

    Attributes:
        body: Bytes to serve (with Content-Length).
        content_type: The Content-Type header sent (the decoder must ignore it).
        redirect: A Location to redirect to with 302 instead.
        forever: Stream bytes without end (no Content-Length).
        hang: Accept the request and never answer.
    """

    body: bytes = b""
    content_type: str = "application/octet-stream"
    redirect: str | None = None
    forever: bool = False
    hang: bool = False


class MediaServer(ThreadingHTTPServer):
    """A threaded HTTP/1.0 server on 127.0.0.1 serving :class:`Route` s, recording the paths requested."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _MediaHandler)
        self.routes: dict[str, Route] = {}
        self.requested: list[str] = []
        self.release = threading.Event()
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.server_address[1]}"

    def serve(self, path: str, route: Route | bytes | Path) -> str:
        """Add a route and return its full URL."""
        if isinstance(route, Path):
            route = Route(route.read_bytes())
        elif isinstance(route, bytes):
            route = Route(route)
        self.routes[path.split("?", 1)[0]] = route
        return self.base_url + path

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Release hanging handlers and stop serving."""
        self.release.set()
        self.shutdown()
        self.server_close()
        self._thread.join(5)


class _MediaHandler(BaseHTTPRequestHandler):
    server: MediaServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - signature of the base class
        """Keep test output quiet."""

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        """Serve the route of the path, or 404."""
        self.server.requested.append(self.path)
        route = self.server.routes.get(self.path.split("?", 1)[0])
        try:
            if route is None:
                self.send_error(404)
            elif route.hang:
                self.server.release.wait(30)
            elif route.redirect is not None:
                self.send_response(302)
                self.send_header("Location", route.redirect)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif route.forever:
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.end_headers()
                chunk = b"\x00" * 65536
                while not self.server.release.is_set():
                    self.wfile.write(chunk)
            else:
                self.send_response(200)
                self.send_header("Content-Type", route.content_type)
                self.send_header("Content-Length", str(len(route.body)))
                self.end_headers()
                self.wfile.write(route.body)
        except OSError:
            return


class RouteToLoopback(httpcore.AsyncNetworkBackend):
    """Opens connections to PUBLIC_TEST_ADDRESS on 127.0.0.1, so that a "public" host is served locally.

    With it, tests keep 127.0.0.1 out of the fetch allow-list and still reach the local media server through a
    host name that resolves (see :func:`public_resolver`) to a public address.
    """

    def __init__(self) -> None:
        self._inner = httpcore.AnyIOBackend()
        self.dialed: list[str] = []

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: object = None,
    ) -> httpcore.AsyncNetworkStream:
        """Dial the local server for the public test address, anything else as asked."""
        self.dialed.append(host)
        target = "127.0.0.1" if host == PUBLIC_TEST_ADDRESS else host
        return await self._inner.connect_tcp(target, port, timeout, local_address)

    async def sleep(self, seconds: float) -> None:
        """Sleep."""
        await self._inner.sleep(seconds)


async def public_resolver(host: str, port: int) -> list[IPAddress]:
    """Resolve every host name to PUBLIC_TEST_ADDRESS (IP literals stay as they are)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        return [ipaddress.ip_address(PUBLIC_TEST_ADDRESS)]


# --- inference ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedFrame:
    """What the inference double saw of one frame (its bottom-right quarter reduced to a gray level)."""

    index: int
    timestamp: float
    width: int
    height: int
    pixel_format: int
    gray: int


class RecordingInferenceDouble(inference_pb2_grpc.InferenceServiceServicer):  # type: ignore[misc]
    """A TEST DOUBLE of the inference API (``AnalyzeFrames``), not the inference service.

    It records every frame it receives and answers one synthetic face per frame, whose box encodes the frame's
    index and gray level (``x = index``, ``y = gray``): these tests assert exactly which pixels, batches and
    metadata cross the wire, which the real service cannot report. The decoder against the real inference service
    is tested end to end in ``tests/e2e`` (every format, sampling, bad input).
    """

    def __init__(self, fail_with: grpc.StatusCode | None = None) -> None:
        self.batches: list[list[ReceivedFrame]] = []
        self.metadata: list[dict[str, str]] = []
        self.options: list[common_pb2.AnalyzeOptions] = []
        self.fail_with = fail_with

    @property
    def frames(self) -> list[ReceivedFrame]:
        """Every frame received, by index (concurrent batches may arrive out of order)."""
        return sorted((f for batch in self.batches for f in batch), key=lambda f: f.index)

    async def AnalyzeFrames(  # noqa: N802 - gRPC method name
        self, request: inference_pb2.AnalyzeFramesRequest, context: grpc.aio.ServicerContext
    ) -> inference_pb2.AnalyzeFramesResponse:
        """Record the batch and answer a synthetic face per frame."""
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        self.options.append(request.options)
        if self.fail_with is not None:
            await context.abort(self.fail_with, "double told to fail")
        received = []
        response = inference_pb2.AnalyzeFramesResponse()
        for frame in request.frames:
            if frame.format == inference_pb2.PIXEL_FORMAT_BGR24:
                pixels = np.frombuffer(frame.data, np.uint8).reshape(frame.height, frame.width, 3)
                gray = gray_level(pixels[frame.height // 2 :, frame.width // 2 :])  # away from a video's marker
            else:
                gray = -1
            received.append(ReceivedFrame(frame.index, frame.timestamp, frame.width, frame.height, frame.format, gray))
            faces = response.frames.add(index=frame.index, timestamp=frame.timestamp)
            face = faces.faces.add(confidence=0.9)
            face.bbox.x, face.bbox.y, face.bbox.width, face.bbox.height = frame.index, gray, 10, 10
        self.batches.append(received)
        return response

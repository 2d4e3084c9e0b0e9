"""Probe and decode media into sampled BGR frames (blocking code: run it in the decode pool).

Probing reads headers only, and checks the resolution caps before any pixel is decoded: 7680x4320 (8K, either
orientation) for images and video, 4096x4096 for animations, plus a frame count, a total pixel cap and a work
budget for animations (a tiny GIF can declare thousands of huge frames; the budget keeps the decoding work, frames
times canvas pixels, proportional to the seconds the animation bills). Pillow's own decompression-bomb guard
(``Image.MAX_IMAGE_PIXELS``: a warning above it, an error above twice it) is left in force as a second line behind
these smaller caps; both its error and its warning (which the service turns into an error at start-up, so that it
is never merely logged) become :class:`~facemint_core.errors.InvalidMedia`.

Decoding yields frames one at a time, as a generator, so a video is never held in memory:

* images: EXIF orientation applied (``ImageOps.exif_transpose``); HEIC through pillow-heif, AVIF through Pillow;
* animations (GIF, APNG, animated WebP): timestamps are the summed frame delays (see :mod:`.animation`), sampled
  like video;
* video (PyAV): seek to ``start`` (to the key frame before it), decode, and keep the first frame at or after each
  sample instant (see :mod:`.sampling`); timestamps are exact (``pts * time_base``); the display matrix (phone
  videos shot in portrait) is applied.

Truncated, corrupt or empty files raise InvalidMedia, also mid-stream.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt
import pillow_heif
from PIL import Image, ImageOps, UnidentifiedImageError

from facemint_core.errors import InvalidMedia
from facemint_core.vocab import MAX_PIXELS, MAX_SIDE
from facemint_media_decoder.animation import Timeline, read_timeline
from facemint_media_decoder.sampling import Sampler, SamplingWindow, Verdict, count_selected
from facemint_media_decoder.sniff import Kind, MediaFormat, Sniffed, check_kind, sniff_file

log = logging.getLogger(__name__)

BGRImage = npt.NDArray[np.uint8]
"""An ``(height, width, 3)`` array of BGR pixels."""

_PIL_FORMATS = {
    MediaFormat.JPEG: "JPEG",
    MediaFormat.PNG: "PNG",
    MediaFormat.APNG: "PNG",
    MediaFormat.WEBP: "WEBP",
    MediaFormat.BMP: "BMP",
    MediaFormat.GIF: "GIF",
    MediaFormat.HEIC: "HEIF",
    MediaFormat.AVIF: "AVIF",
}
_EXIF_ORIENTATION = 0x0112
_PIL_ERRORS = (UnidentifiedImageError, OSError, EOFError, SyntaxError, ValueError)
# Summed animation delays are floats; a microsecond is far below any delay a file can express.
_ANIMATION_TOLERANCE = 1e-6
_MICROSECOND = Fraction(1, 1_000_000)


@dataclass(frozen=True)
class DecodeLimits:
    """Resolution and work caps, checked from headers before decoding.

    Attributes:
        max_side: Longest side of an image or video frame, pixels.
        max_pixels: Pixels of an image or video frame.
        animated_max_side: Longest side of an animation, pixels.
        animated_max_frames: Frames of an animation.
        animated_max_total_pixels: Frames times canvas pixels of an animation (the decoding work).
        animated_max_pixels_per_second: The work budget of an animation: frames times canvas pixels per second
            it bills (its duration, at least 1 s). Every frame is composited onto the whole canvas, so a few KB of
            tiny frames on a large canvas would otherwise cost minutes of decoding for seconds of billing.
        video_threads: FFmpeg decoding threads per video; 0 lets FFmpeg choose.
    """

    max_side: int = MAX_SIDE
    max_pixels: int = MAX_PIXELS
    animated_max_side: int = 4096
    animated_max_frames: int = 10_000
    animated_max_total_pixels: int = 4_000_000_000
    animated_max_pixels_per_second: int = 64_000_000
    video_threads: int = 0


@dataclass(frozen=True)
class Probe:
    """Facts about a media file, known before decoding it.

    Attributes:
        sniffed: Its format.
        kind: The kind it is decoded as.
        width: Width of the frames the decoder yields (after EXIF orientation or the display matrix).
        height: Height of those frames.
        duration: Seconds (0 for an image).
        frame_count: Frames in the file (exact for animations, estimated from the frame rate for video).
        fps: Average frame rate of a video (0 otherwise).
        first_timestamp: Presentation time of the video's first frame in its stream, seconds. Frame timestamps
            (and the sampling window) count from it, so that they share one time base with ``duration``: a stream
            that starts at 0.852 s has its first frame at 0.0 and its last before ``duration``.
        tolerance: Half a tick of the video's time base, seconds (see :mod:`.sampling`).
        rotation: Counter-clockwise display rotation of a video, degrees.
        timeline: Frame delays of an animation.
    """

    sniffed: Sniffed
    kind: Kind
    width: int
    height: int
    duration: float = 0.0
    frame_count: int = 1
    fps: float = 0.0
    first_timestamp: float = 0.0
    tolerance: float = 1e-9
    rotation: int = 0
    timeline: Timeline | None = None

    @property
    def container(self) -> str:
        """The container name reported in ``MediaInfo`` (``mp4``, ``webm``, ``jpeg``, ``apng``, ...)."""
        return self.sniffed.format.value

    def expected_frames(self, window: SamplingWindow) -> int:
        """How many frames decoding with ``window`` yields (an estimate for variable frame rate video)."""
        if self.kind is Kind.IMAGE:
            return 1
        if self.timeline is not None:
            return count_selected(self.timeline.timestamps, window, _ANIMATION_TOLERANCE)
        if self.fps <= 0 or self.frame_count <= 0:
            return 0
        first = max(0, math.floor(window.start * self.fps) - 1)
        times = (i / self.fps for i in range(first, self.frame_count))
        return count_selected(times, window, self.tolerance)


@dataclass(frozen=True)
class DecodedFrame:
    """A sampled frame.

    Attributes:
        index: Position among the sampled frames (0, 1, ...), stable across runs of the same request.
        timestamp: Seconds from the start of the media.
        image: Pixels, BGR, ``uint8``, shape ``(height, width, 3)``, C-contiguous.
    """

    index: int
    timestamp: float
    image: BGRImage


@dataclass(frozen=True)
class EncodedFrame:
    """A still image handed on undecoded: the complete JPEG file, for the inference service to decode.

    Decoding a 1080p JPEG costs about as much in either service, but the file is ~20x smaller than its pixels,
    so passing it on saves a decode here and a 6 MB copy through gRPC (OpenCV applies the EXIF orientation on
    both sides, so the pixels are the same).

    Attributes:
        index: Always 0 (an image is one frame).
        timestamp: Always 0.0.
        data: The file's bytes.
        width: Width after EXIF orientation (from the probe).
        height: Height after EXIF orientation.
    """

    index: int
    timestamp: float
    data: bytes
    width: int
    height: int


@functools.cache
def _register_heif() -> None:
    pillow_heif.register_heif_opener()


@contextmanager
def _open_image(path: Path, fmt: MediaFormat) -> Iterator[Image.Image]:
    """Open an image lazily (headers only), restricted to its sniffed format."""
    _register_heif()
    try:
        image = Image.open(path, formats=[_PIL_FORMATS[fmt]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidMedia(f"the image's dimensions are beyond any accepted size ({exc})") from None
    except _PIL_ERRORS as exc:
        raise InvalidMedia(f"the {fmt.value} image cannot be read: {exc}") from None
    with image:
        yield image


def _to_bgr(image: Image.Image) -> BGRImage:
    """Convert a Pillow image of any mode to a C-contiguous BGR uint8 array."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        gray = (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode == "F":
        gray = np.asarray(image).clip(0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    rgb = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _complete_jpeg(path: Path) -> bytes | None:
    """The bytes of a JPEG file that ends with its end-of-image marker; None for a truncated one."""
    data = path.read_bytes()
    return data if len(data) >= 4 and data.endswith(b"\xff\xd9") else None


def _fast_jpeg(data: bytes) -> BGRImage | None:
    """Decode a complete JPEG with OpenCV (libjpeg-turbo, EXIF orientation applied, BGR out): about 4x faster
    than Pillow for a 1080p photo, with identical pixels. Returns None, to take the Pillow path with its precise
    errors, for a file OpenCV cannot decode."""
    decoded = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    return np.ascontiguousarray(decoded) if decoded is not None else None


def _orientation(image: Image.Image) -> int:
    try:
        return int(image.getexif().get(_EXIF_ORIENTATION, 1))
    except (*_PIL_ERRORS, TypeError, KeyError):
        return 1


class MediaDecoder:
    """Probes and decodes spooled media files; thread-safe (it holds no per-file state)."""

    def __init__(self, limits: DecodeLimits) -> None:
        """Create a decoder with the given caps."""
        self.limits = limits

    def _check_resolution(self, width: int, height: int, kind: Kind) -> None:
        if width <= 0 or height <= 0:
            raise InvalidMedia(f"the media declares an empty frame size ({width}x{height})")
        if kind is Kind.ANIMATED:
            side = self.limits.animated_max_side
            if width > side or height > side:
                raise InvalidMedia(f"the animation is {width}x{height} pixels; the limit is {side}x{side}")
            return
        if max(width, height) > self.limits.max_side or width * height > self.limits.max_pixels:
            raise InvalidMedia(
                f"the {kind.value} is {width}x{height} pixels; the limit is {self.limits.max_side} pixels on the "
                f"longest side and {self.limits.max_pixels} pixels in all (8K, either orientation)"
            )

    def probe(self, path: Path, kind: Kind) -> Probe:
        """Sniff the format, check it against the declared kind and the caps, and read the media's facts.

        Raises:
            InvalidMedia: Empty, unsupported, mismatched, too large or unreadable media.
        """
        sniffed = sniff_file(path)
        check_kind(sniffed, kind)
        if kind is Kind.VIDEO:
            return self._probe_video(path, sniffed)
        if kind is Kind.ANIMATED:
            return self._probe_animated(path, sniffed)
        with _open_image(path, sniffed.format) as image:
            width, height = image.size
            self._check_resolution(width, height, kind)
            if _orientation(image) in (5, 6, 7, 8):
                width, height = height, width
        return Probe(sniffed, kind, width, height)

    def _probe_animated(self, path: Path, sniffed: Sniffed) -> Probe:
        timeline = read_timeline(path, sniffed.format)
        with _open_image(path, sniffed.format) as image:
            width, height = image.size
            self._check_resolution(width, height, Kind.ANIMATED)
            decoded_frames = int(getattr(image, "n_frames", 1)) - (1 if timeline.skip_first else 0)
        frames = min(len(timeline.delays_ms), decoded_frames)
        if frames <= 0:
            raise InvalidMedia(f"the {sniffed.format.value} animation holds no frame")
        if len(timeline.delays_ms) != frames:
            timeline = Timeline(timeline.delays_ms[:frames], timeline.skip_first)
        if frames > self.limits.animated_max_frames:
            raise InvalidMedia(f"the animation has {frames} frames; the limit is {self.limits.animated_max_frames}")
        if frames * width * height > self.limits.animated_max_total_pixels:
            raise InvalidMedia(
                f"the animation has {frames} frames of {width}x{height} pixels; the limit is "
                f"{self.limits.animated_max_total_pixels} pixels in all frames together"
            )
        billed = max(1.0, timeline.duration)
        if frames * width * height > self.limits.animated_max_pixels_per_second * billed:
            raise InvalidMedia(
                f"the animation has {frames} frames of {width}x{height} pixels for {timeline.duration:g} s: "
                f"{frames * width * height / billed / 1e6:.0f} megapixels to decode per second of media, beyond the "
                f"work budget of {self.limits.animated_max_pixels_per_second / 1e6:g} (a smaller canvas, fewer "
                "frames or longer frame delays fit)"
            )
        return Probe(
            sniffed, Kind.ANIMATED, width, height, duration=timeline.duration, frame_count=frames, timeline=timeline
        )

    def _probe_video(self, path: Path, sniffed: Sniffed) -> Probe:
        try:
            with av.open(str(path), metadata_errors="ignore") as container:
                if not container.streams.video:
                    raise InvalidMedia(f"the {sniffed.format.value} file has no video stream")
                stream = container.streams.video[0]
                width, height = stream.codec_context.width, stream.codec_context.height
                self._check_resolution(width, height, Kind.VIDEO)
                time_base = stream.time_base or _MICROSECOND
                if stream.duration:  # the end of the stream, on the time base of its frames' pts
                    end = float(((stream.start_time or 0) + stream.duration) * time_base)
                elif "matroska" in container.format.name:  # Matroska/WebM: the segment's duration counts from 0
                    end = (container.duration or 0) / av.time_base
                else:  # elsewhere FFmpeg's container duration is the length from the container's start
                    end = ((container.start_time or 0) + (container.duration or 0)) / av.time_base
                fps = float(stream.average_rate or stream.guessed_rate or 0)
                first = next((f for f in container.decode(stream) if f.pts is not None), None)
        except av.FFmpegError as exc:
            raise InvalidMedia(f"the {sniffed.format.value} video cannot be read: {exc}") from None
        if first is None:
            raise InvalidMedia(f"the {sniffed.format.value} video has no decodable frame")
        rotation = first.rotation
        if abs(rotation) % 180 == 90:
            width, height = height, width
        first_timestamp = float((first.pts or 0) * (first.time_base or time_base))
        duration = max(0.0, end - first_timestamp)  # counted from the first frame, as frame timestamps are
        return Probe(
            sniffed,
            Kind.VIDEO,
            width,
            height,
            duration=duration,
            frame_count=stream.frames or round(duration * fps),
            fps=fps,
            first_timestamp=first_timestamp,
            tolerance=float(time_base) / 2,
            rotation=rotation,
        )

    def frames(
        self, path: Path, probe: Probe, window: SamplingWindow, skip_below: int = 0, encoded_up_to: int = 0
    ) -> Iterator[DecodedFrame | EncodedFrame]:
        """Decode the sampled frames, in order, one at a time.

        Args:
            path: The spooled file that ``probe`` describes.
            probe: The result of :meth:`probe` on it.
            window: Sampling start, end and rate (ignored for an image, which is one frame at 0 s).
            skip_below: Sampled frames with a lower index are neither converted nor yielded (resumption).
            encoded_up_to: A complete JPEG image of at most this many bytes is yielded as an
                :class:`EncodedFrame` instead of being decoded here (0: always decode).

        Raises:
            InvalidMedia: The file turns out truncated or corrupt while decoding.
        """
        if probe.kind is Kind.VIDEO:
            return self._video_frames(path, probe, window, skip_below)
        if probe.kind is Kind.ANIMATED:
            return self._animated_frames(path, probe, window, skip_below)
        return self._image_frames(path, probe, skip_below, encoded_up_to)

    def _image_frames(
        self, path: Path, probe: Probe, skip_below: int, encoded_up_to: int
    ) -> Iterator[DecodedFrame | EncodedFrame]:
        if skip_below > 0:
            return
        with _open_image(path, probe.sniffed.format) as image:
            self._check_resolution(*image.size, Kind.IMAGE)
            jpeg = _complete_jpeg(path) if probe.sniffed.format is MediaFormat.JPEG else None
            if jpeg is not None and len(jpeg) <= encoded_up_to:
                yield EncodedFrame(0, 0.0, jpeg, probe.width, probe.height)
                return
            fast = _fast_jpeg(jpeg) if jpeg is not None else None
            if fast is not None:
                yield DecodedFrame(0, 0.0, fast)
                return
            try:
                image.load()
            except _PIL_ERRORS as exc:
                raise InvalidMedia(f"the {probe.container} image is truncated or corrupt: {exc}") from None
            try:
                oriented = ImageOps.exif_transpose(image)
            except (*_PIL_ERRORS, TypeError, KeyError) as exc:
                log.warning("ignoring unreadable EXIF orientation", extra={"error": str(exc)})
                oriented = image
            yield DecodedFrame(0, 0.0, _to_bgr(oriented))

    def _animated_frames(
        self, path: Path, probe: Probe, window: SamplingWindow, skip_below: int
    ) -> Iterator[DecodedFrame]:
        assert probe.timeline is not None
        offset = 1 if probe.timeline.skip_first else 0
        sampler = Sampler(window, _ANIMATION_TOLERANCE)
        index = 0
        with _open_image(path, probe.sniffed.format) as image:
            for position, timestamp in enumerate(probe.timeline.timestamps):
                verdict = sampler.offer(timestamp)
                if verdict is Verdict.STOP:
                    return
                if verdict is Verdict.SKIP:
                    continue
                if index >= skip_below:
                    try:
                        image.seek(position + offset)
                        pixels = _to_bgr(image)
                    except _PIL_ERRORS as exc:
                        raise InvalidMedia(
                            f"the {probe.container} animation is truncated or corrupt at frame {position}: {exc}"
                        ) from None
                    yield DecodedFrame(index, timestamp, pixels)
                index += 1

    def _video_frames(
        self, path: Path, probe: Probe, window: SamplingWindow, skip_below: int
    ) -> Iterator[DecodedFrame]:
        sampler = Sampler(window, probe.tolerance)
        turns = round(probe.rotation / 90) % 4
        index = 0
        try:
            with av.open(str(path), metadata_errors="ignore") as container:
                stream = container.streams.video[0]
                time_base = stream.time_base or _MICROSECOND
                stream.thread_type = "AUTO"
                stream.codec_context.thread_count = self.limits.video_threads
                if window.start > 0:
                    seek_to = window.start + probe.first_timestamp
                    container.seek(int(seek_to / time_base), stream=stream, backward=True)
                for frame in _decode_checked(container, stream, probe.container):
                    if frame.pts is None:
                        continue
                    timestamp = float(frame.pts * (frame.time_base or time_base)) - probe.first_timestamp
                    verdict = sampler.offer(timestamp)
                    if verdict is Verdict.STOP:
                        return
                    if verdict is Verdict.SKIP:
                        continue
                    if index >= skip_below:
                        pixels = np.asarray(frame.to_ndarray(format="bgr24"), dtype=np.uint8)
                        if turns:
                            pixels = np.ascontiguousarray(np.rot90(pixels, turns))
                        yield DecodedFrame(index, timestamp, pixels)
                    index += 1
        except av.FFmpegError as exc:
            raise InvalidMedia(f"the {probe.container} video is truncated or corrupt: {exc}") from None


def _decode_checked(
    container: av.container.InputContainer, stream: av.VideoStream, name: str
) -> Iterator[av.VideoFrame]:
    """Decode a stream, refusing packets the demuxer marks corrupt (a truncated file).

    With frame threading FFmpeg's decoder does not report a damaged packet, so the check happens on packets.
    """
    for packet in container.demux(stream):
        if packet.is_corrupt:
            raise InvalidMedia(f"the {name} video is truncated or corrupt (a damaged packet at pts {packet.pts})")
        for frame in packet.decode():
            if isinstance(frame, av.VideoFrame):
                yield frame


def configure_pillow_bomb_guard() -> None:
    """Make Pillow's decompression-bomb warning an error in this process (call once at start-up)."""
    warnings.filterwarnings("error", category=Image.DecompressionBombWarning)

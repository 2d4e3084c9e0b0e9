"""Probing and decoding: every format, exact sampling timestamps, orientation, caps and the bad-input suite."""

from __future__ import annotations

import time
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from decoder_testkit import (
    VideoSpec,
    animation,
    gray_level,
    halves,
    jpeg_with_declared_size,
    level,
    png_bomb,
    save_image,
    video,
)
from PIL import Image, ImageOps

from facemint.inference.v1 import inference_pb2
from facemint_core.errors import InvalidMedia
from facemint_local import testmedia
from facemint_media_decoder.decode import DecodedFrame, DecodeLimits, EncodedFrame, MediaDecoder
from facemint_media_decoder.inference import to_wire
from facemint_media_decoder.sampling import SamplingWindow
from facemint_media_decoder.sniff import Kind

RED = (0, 0, 255)
BLUE = (255, 0, 0)


def decode_all(
    decoder: MediaDecoder, path: Path, kind: Kind, window: SamplingWindow | None = None, skip_below: int = 0
) -> list[DecodedFrame]:
    probe = decoder.probe(path, kind)
    return list(decoder.frames(path, probe, window or SamplingWindow(), skip_below))


def assert_close(pixel: npt.NDArray[np.uint8], bgr: tuple[int, int, int], tolerance: int = 40) -> None:
    assert np.abs(pixel.astype(int) - np.array(bgr)).max() <= tolerance, f"{pixel.tolist()} is not near {bgr}"


# --- still images -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "BMP", "HEIF", "AVIF"])
def test_still_image_decodes_to_contiguous_bgr(decoder: MediaDecoder, tmp_path: Path, fmt: str) -> None:
    path = save_image(tmp_path / "media", halves(64, 32), fmt)
    [frame] = decode_all(decoder, path, Kind.IMAGE)
    assert (frame.index, frame.timestamp) == (0, 0.0)
    assert frame.image.shape == (32, 64, 3) and frame.image.dtype == np.uint8
    assert frame.image.flags.c_contiguous
    assert_close(frame.image[16, 4], RED)
    assert_close(frame.image[16, 60], BLUE)
    probe = decoder.probe(path, Kind.IMAGE)
    assert (probe.width, probe.height, probe.duration, probe.expected_frames(SamplingWindow())) == (64, 32, 0.0, 1)


@pytest.mark.parametrize("fmt", ["JPEG", "AVIF", "HEIF"])
def test_exif_orientation_6_turns_the_image_upright(decoder: MediaDecoder, tmp_path: Path, fmt: str) -> None:
    path = save_image(tmp_path / "media", halves(64, 32), fmt, orientation=6)  # displayed rotated 90 deg clockwise
    [frame] = decode_all(decoder, path, Kind.IMAGE)
    assert frame.image.shape == (64, 32, 3)
    assert_close(frame.image[4, 16], RED)  # the left half is now on top
    assert_close(frame.image[60, 16], BLUE)
    probe = decoder.probe(path, Kind.IMAGE)
    assert (probe.width, probe.height) == (32, 64)


def test_complete_jpeg_is_handed_on_undecoded_and_decodes_upright_where_it_lands(
    decoder: MediaDecoder, tmp_path: Path
) -> None:
    path = save_image(tmp_path / "media", halves(64, 32), "JPEG", orientation=6)
    probe = decoder.probe(path, Kind.IMAGE)
    [frame] = list(decoder.frames(path, probe, SamplingWindow(), encoded_up_to=1 << 20))
    assert isinstance(frame, EncodedFrame)
    assert frame.data == path.read_bytes() and (frame.width, frame.height) == (32, 64)
    wire = to_wire(frame, max_frame_bytes=1 << 20, jpeg_quality=90)
    assert wire.format == inference_pb2.PIXEL_FORMAT_ENCODED and (wire.width, wire.height) == (32, 64)
    upright = cv2.imdecode(np.frombuffer(wire.data, np.uint8), cv2.IMREAD_COLOR)  # as the inference service does
    assert upright.shape == (64, 32, 3)
    assert_close(upright[4, 16], RED)
    # Above the size limit, or for another format, frames are decoded here as before.
    [decoded] = list(decoder.frames(path, probe, SamplingWindow(), encoded_up_to=16))
    assert isinstance(decoded, DecodedFrame) and decoded.image.shape == (64, 32, 3)
    png = save_image(tmp_path / "media.png", halves(64, 32), "PNG")
    [still] = list(decoder.frames(png, decoder.probe(png, Kind.IMAGE), SamplingWindow(), encoded_up_to=1 << 20))
    assert isinstance(still, DecodedFrame)


def test_truncated_jpeg_is_never_handed_on(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = save_image(tmp_path / "media", halves(256, 256), "JPEG")
    path.write_bytes(path.read_bytes()[:-200])
    probe = decoder.probe(path, Kind.IMAGE)
    with pytest.raises(InvalidMedia, match="truncated or corrupt"):
        list(decoder.frames(path, probe, SamplingWindow(), encoded_up_to=1 << 20))


def test_exif_orientation_3_turns_the_image_half_way(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = save_image(tmp_path / "media.jpg", halves(64, 32), "JPEG", orientation=3)
    [frame] = decode_all(decoder, path, Kind.IMAGE)
    assert frame.image.shape == (32, 64, 3)
    assert_close(frame.image[16, 4], BLUE)
    assert_close(frame.image[16, 60], RED)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("L", (20, 10), 128),
        Image.new("LA", (20, 10), (128, 255)),
        Image.new("RGBA", (20, 10), (200, 10, 10, 255)),
        Image.new("CMYK", (20, 10), (0, 0, 0, 0)),
        Image.new("I;16", (20, 10), 65535),
    ],
    ids=lambda im: im.mode,
)
def test_any_pixel_mode_becomes_three_channel_bgr(decoder: MediaDecoder, tmp_path: Path, image: Image.Image) -> None:
    path = tmp_path / "media.png" if image.mode != "CMYK" else tmp_path / "media.jpg"
    image.save(path)
    [frame] = decode_all(decoder, path, Kind.IMAGE)
    assert frame.image.shape == (10, 20, 3) and frame.image.dtype == np.uint8


def test_palette_png_with_transparency_decodes(decoder: MediaDecoder, tmp_path: Path) -> None:
    image = Image.new("P", (20, 10), 1)
    image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    image.save(tmp_path / "p.png", transparency=0)
    [frame] = decode_all(decoder, tmp_path / "p.png", Kind.IMAGE)
    assert_close(frame.image[5, 5], RED, tolerance=0)


REAL_PHOTOS = [
    testmedia.T1,
    testmedia.PLAYERS,
    testmedia.YAO_MING,  # EXIF without orientation
    *testmedia.OBAMA,  # EXIF orientation 1, Adobe colour transform, ICC profile
    testmedia.BIDEN,
    *testmedia.MACRON,
    *testmedia.MASKS,  # progressive JPEG; EXIF orientation 0 (out of range)
    testmedia.OBAMA_RGBA,  # PNG with alpha
    testmedia.ASTRONAUT,  # PNG with an ICC profile
    testmedia.TOM_HANKS,
]
"""Real photos of several encoders and metadata, from pinned registry packages."""


def test_real_photos_decode_with_their_exif_orientation(decoder: MediaDecoder) -> None:
    for photo in map(testmedia.path, REAL_PHOTOS):
        [frame] = decode_all(decoder, photo, Kind.IMAGE)
        with Image.open(photo) as reference:
            upright = ImageOps.exif_transpose(reference)
            assert frame.image.shape == (upright.height, upright.width, 3), photo.name
            expected = np.asarray(upright.convert("RGB"))[:, :, ::-1]
        assert np.array_equal(frame.image, expected), photo.name


# --- animations -------------------------------------------------------------------------------------------------

DELAYS = [100, 250, 40, 500, 70]


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_animation_frames_follow_their_delays(decoder: MediaDecoder, tmp_path: Path, fmt: str) -> None:
    path = animation(tmp_path / "anim", fmt, DELAYS)
    probe = decoder.probe(path, Kind.ANIMATED)
    assert probe.duration == pytest.approx(0.96)
    assert probe.frame_count == 5
    window = SamplingWindow(rate=10)  # instants 0, .1, .2, ...: frame 3 (0.39 s) falls before the instant 0.4
    frames = list(decoder.frames(path, probe, window))
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.35, 0.89])
    assert [gray_level(f.image) for f in frames] == [level(0), level(1), level(2), level(4)]
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert probe.expected_frames(window) == 4


def test_gif_zero_delays_play_at_100_ms_like_browsers(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = animation(tmp_path / "fast.gif", "GIF", [0, 0, 0, 10, 20])
    frames = decode_all(decoder, path, Kind.ANIMATED, SamplingWindow(rate=30))
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])


def test_gif_sampling_at_two_fps_picks_first_frame_after_each_instant(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = animation(tmp_path / "a.gif", "GIF", [150] * 12)  # frames at 0, .15, .3, ... 1.65
    frames = decode_all(decoder, path, Kind.ANIMATED, SamplingWindow(rate=2))
    assert [f.timestamp for f in frames] == pytest.approx([0.0, 0.6, 1.05, 1.5])
    assert [gray_level(f.image) for f in frames] == [level(0), level(4), level(7), level(10)]


def test_apng_default_image_outside_the_animation_is_skipped(decoder: MediaDecoder, tmp_path: Path) -> None:
    frames = [Image.new("RGB", (16, 16), (level(i),) * 3) for i in range(4)]
    path = tmp_path / "d.png"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=[100, 200, 300, 400], default_image=True)
    decoded = decode_all(decoder, path, Kind.ANIMATED, SamplingWindow(rate=20))
    assert [f.timestamp for f in decoded] == pytest.approx([0.0, 0.1, 0.3])
    assert [gray_level(f.image) for f in decoded] == [level(1), level(2), level(3)]


def test_animated_png_submitted_as_image_is_its_first_frame(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = animation(tmp_path / "a.png", "PNG", DELAYS)
    [frame] = decode_all(decoder, path, Kind.IMAGE)
    assert gray_level(frame.image) == level(0)


def test_animation_over_4096_is_refused_before_decoding(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = animation(tmp_path / "wide.gif", "GIF", [100, 100], size=(4097, 8))
    with pytest.raises(InvalidMedia, match="4097x8 pixels; the limit is 4096x4096"):
        decoder.probe(path, Kind.ANIMATED)


def test_animation_frame_and_pixel_budgets_are_enforced(tmp_path: Path) -> None:
    path = animation(tmp_path / "many.gif", "GIF", [100] * 6, size=(100, 100))
    with pytest.raises(InvalidMedia, match="6 frames; the limit is 5"):
        MediaDecoder(DecodeLimits(animated_max_frames=5)).probe(path, Kind.ANIMATED)
    with pytest.raises(InvalidMedia, match="pixels in all frames together"):
        MediaDecoder(DecodeLimits(animated_max_total_pixels=50_000)).probe(path, Kind.ANIMATED)


def test_a_tiny_gif_on_a_huge_canvas_is_refused_by_its_work_budget_at_probe(
    decoder: MediaDecoder, tmp_path: Path
) -> None:
    """Issue #13: 5 KB, 230 frames of 1x1 on 4096x4096 bill 23 s but took 5 min 50 s to decode (1.5 s a frame)."""
    path = tmp_path / "sparse.gif"
    path.write_bytes(testmedia.sparse_canvas_gif())
    started = time.perf_counter()
    with pytest.raises(InvalidMedia, match="230 frames of 4096x4096 pixels for 23 s: 168 megapixels .* work budget"):
        decoder.probe(path, Kind.ANIMATED)
    assert time.perf_counter() - started < 1.0


def test_the_work_budget_follows_the_billed_seconds(tmp_path: Path) -> None:
    limits = DecodeLimits(animated_max_pixels_per_second=100_000)  # 10 frames of 100x100 per billed second
    fits = animation(tmp_path / "fits.gif", "GIF", [100] * 20, size=(100, 100))  # 2 s, 200 000 pixels
    assert MediaDecoder(limits).probe(fits, Kind.ANIMATED).frame_count == 20
    fast = animation(tmp_path / "fast.gif", "GIF", [50] * 21, size=(100, 100))  # 1.05 s, 210 000 pixels
    with pytest.raises(InvalidMedia, match="work budget"):
        MediaDecoder(limits).probe(fast, Kind.ANIMATED)
    short = animation(tmp_path / "short.gif", "GIF", [20] * 10, size=(100, 100))  # 0.2 s bills 1 s: fits
    assert MediaDecoder(limits).probe(short, Kind.ANIMATED).frame_count == 10


# --- video ------------------------------------------------------------------------------------------------------

VIDEO_CASES = [
    pytest.param(VideoSpec(), "mp4", id="mp4-h264"),
    pytest.param(VideoSpec(codec="libvpx-vp9"), "webm", id="webm-vp9"),
    pytest.param(VideoSpec(), "mkv", id="mkv-h264"),
    pytest.param(VideoSpec(), "mov", id="mov-h264"),
    pytest.param(VideoSpec(codec="mpeg4"), "m4v", id="m4v-mpeg4"),
]


@pytest.mark.parametrize(("spec", "ext"), VIDEO_CASES)
def test_video_samples_first_frame_at_or_after_each_instant_with_exact_timestamps(
    decoder: MediaDecoder, tmp_path: Path, spec: VideoSpec, ext: str
) -> None:
    path = video(tmp_path / f"clip.{ext}", spec)  # 60 frames at 30 fps: frame i at i/30 s
    probe = decoder.probe(path, Kind.VIDEO)
    assert (probe.width, probe.height, probe.container) == (160, 96, ext)
    assert probe.duration == pytest.approx(2.0, abs=0.05)
    window = SamplingWindow(start=0.5, end=1.6, rate=4)  # instants 0.5, 0.75, 1.0, 1.25, 1.5
    frames = list(decoder.frames(path, probe, window))
    expected_frames = [15, 23, 30, 38, 45]
    assert [f.timestamp for f in frames] == pytest.approx([i / 30 for i in expected_frames], abs=0.0006)
    assert [gray_level(f.image[48:, 80:]) for f in frames] == [level(i) for i in expected_frames]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    assert probe.expected_frames(window) == 5
    assert frames[0].image.shape == (96, 160, 3) and frames[0].image.flags.c_contiguous


def test_video_seeks_to_start_time_past_key_frames(decoder: MediaDecoder, tmp_path: Path) -> None:
    spec = VideoSpec(frames=120, options={"g": "10", "bf": "2"})
    path = video(tmp_path / "long.mp4", spec)
    frames = decode_all(decoder, path, Kind.VIDEO, SamplingWindow(start=2.0, rate=2))
    assert [round(f.timestamp * 30) for f in frames] == [60, 75, 90, 105]
    assert [f.timestamp for f in frames] == [60 / 30, 75 / 30, 90 / 30, 105 / 30]
    assert [gray_level(f.image[48:, 80:]) for f in frames] == [level(i) for i in (60, 75, 90, 105)]


def test_video_resume_skips_lower_indices_and_keeps_numbering(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = video(tmp_path / "clip.mp4", VideoSpec())
    frames = decode_all(decoder, path, Kind.VIDEO, SamplingWindow(rate=2), skip_below=2)
    assert [(f.index, round(f.timestamp, 3)) for f in frames] == [(2, 1.0), (3, 1.5)]


def test_video_display_rotation_is_applied(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = video(tmp_path / "portrait.mp4", VideoSpec(frames=4, rotation=90))
    probe = decoder.probe(path, Kind.VIDEO)
    assert (probe.width, probe.height, probe.rotation) == (96, 160, 90)
    frame = next(iter(decoder.frames(path, probe, SamplingWindow())))
    assert frame.image.shape == (160, 96, 3)
    # Rotated 90 degrees counter-clockwise, the source's bright top-left corner is at the bottom left.
    assert frame.image[150, 5].min() > 200
    assert frame.image[5, 5].max() < 100


def test_video_frames_stream_lazily(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = video(tmp_path / "clip.mp4", VideoSpec())
    probe = decoder.probe(path, Kind.VIDEO)
    frames = decoder.frames(path, probe, SamplingWindow(rate=30))
    first = next(iter(frames))
    assert first.index == 0
    frames.close()  # type: ignore[attr-defined]


def test_real_faces_video_sampling_matches_expected_frames(decoder: MediaDecoder, tmp_path: Path) -> None:
    # Like a phone clip: 640 x 360 H.264 at 29.97 fps (B-frames: decode order differs from presentation), 10 s,
    # of real face photos moving across the frame.
    faces = [testmedia.rgb(key).resize((120, 150)) for key in (testmedia.MACRON[1], testmedia.ARDERN[1])]
    data, _ = testmedia.moving_faces_video(
        faces,
        [(0.0, 10.0, (20, 40), (480, 160)), (2.0, 9.0, (500, 200), (60, 20))],
        size=(640, 360),
        fps=Fraction(30000, 1001),
        seconds=10.0,
    )
    path = tmp_path / "faces.mp4"
    path.write_bytes(data)
    probe = decoder.probe(path, Kind.VIDEO)
    window = SamplingWindow(start=1.0, end=7.0, rate=2)
    frames = decode_all(decoder, path, Kind.VIDEO, window)
    assert (probe.width, probe.height) == (640, 360)
    assert len(frames) == probe.expected_frames(window) == 12
    assert all(1.0 <= f.timestamp < 7.0 for f in frames)
    assert [f.timestamp for f in frames] == sorted(f.timestamp for f in frames)


# --- bad input ----------------------------------------------------------------------------------------------------


def test_truncated_jpeg_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    noise = np.random.default_rng(1).integers(0, 255, (256, 256, 3), np.uint8)
    whole = save_image(tmp_path / "whole.jpg", Image.fromarray(noise), "JPEG")
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InvalidMedia, match="truncated or corrupt"):
        decode_all(decoder, cut, Kind.IMAGE)


def test_zero_byte_file_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(InvalidMedia, match="empty"):
        decoder.probe(empty, Kind.VIDEO)


@pytest.mark.parametrize(
    ("width", "height", "message"),
    [
        (16000, 16000, "beyond any accepted size"),  # over twice Pillow's MAX_IMAGE_PIXELS: Pillow's error
        (10000, 9000, "beyond any accepted size"),  # over Pillow's MAX_IMAGE_PIXELS: its warning, as an error
        (9000, 5000, "9000x5000 pixels; the limit is 7680"),  # under Pillow's limit, over ours
        (7680, 4321, "7680x4321 pixels"),
    ],
)
def test_png_decompression_bomb_is_refused_from_its_header(
    decoder: MediaDecoder, tmp_path: Path, width: int, height: int, message: str
) -> None:
    bomb = png_bomb(tmp_path / "bomb.png", width, height)
    assert bomb.stat().st_size < 2_000_000
    with pytest.raises(InvalidMedia, match=message):
        decoder.probe(bomb, Kind.IMAGE)


def test_8k_portrait_image_is_accepted(decoder: MediaDecoder, tmp_path: Path) -> None:
    probe = decoder.probe(png_bomb(tmp_path / "portrait.png", 4320, 7680), Kind.IMAGE)
    assert (probe.width, probe.height) == (4320, 7680)


def test_20000_square_jpeg_header_is_refused_before_decoding(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = jpeg_with_declared_size(tmp_path / "huge.jpg", 20000, 20000)
    with pytest.raises(InvalidMedia, match="beyond any accepted size"):
        decoder.probe(path, Kind.IMAGE)


def test_text_file_named_mp4_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_text("this is not a video\n" * 100)
    with pytest.raises(InvalidMedia, match="not a supported"):
        decoder.probe(path, Kind.VIDEO)


def test_image_submitted_as_video_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = save_image(tmp_path / "photo.mp4", halves(32, 32), "JPEG")
    with pytest.raises(InvalidMedia, match="jpeg image, which type 'video' does not accept"):
        decoder.probe(path, Kind.VIDEO)


def test_video_without_its_index_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    whole = video(tmp_path / "whole.mp4", VideoSpec())  # the moov index is written at the end
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(InvalidMedia, match="cannot be read"):
        decoder.probe(cut, Kind.VIDEO)


def test_video_truncated_mid_stream_fails_after_the_decodable_frames(decoder: MediaDecoder, tmp_path: Path) -> None:
    spec = VideoSpec(frames=90, muxer_options={"movflags": "faststart"}, width=320, height=192)
    noise = video(tmp_path / "whole.mp4", spec)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(noise.read_bytes()[: noise.stat().st_size * 2 // 3])
    probe = decoder.probe(cut, Kind.VIDEO)
    decoded: list[DecodedFrame] = []
    with pytest.raises(InvalidMedia, match="truncated or corrupt"):
        for frame in decoder.frames(cut, probe, SamplingWindow(rate=30)):
            decoded.append(frame)
    assert 0 < len(decoded) < 90


def test_video_over_the_resolution_cap_is_refused_before_decoding(tmp_path: Path) -> None:
    path = video(tmp_path / "clip.webm", VideoSpec(codec="libvpx-vp9", frames=2))
    with pytest.raises(InvalidMedia, match="160x96 pixels; the limit is 128"):
        MediaDecoder(DecodeLimits(max_side=128)).probe(path, Kind.VIDEO)


def test_garbage_after_a_valid_ftyp_is_invalid_media(decoder: MediaDecoder, tmp_path: Path) -> None:
    path = tmp_path / "fake.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41" + bytes(range(256)) * 40)
    with pytest.raises(InvalidMedia):
        decoder.probe(path, Kind.VIDEO)


@pytest.mark.parametrize("container", ["mp4", "matroska"])
def test_timestamps_of_a_stream_that_starts_late_share_the_time_base_of_its_duration(
    decoder: MediaDecoder, tmp_path: Path, container: str
) -> None:
    spec = VideoSpec(container=container, frames=60, first_pts=26)  # the stream starts at 0.867 s
    path = video(tmp_path / f"late.{container}", spec)
    probe = decoder.probe(path, Kind.VIDEO)
    frames = decode_all(decoder, path, Kind.VIDEO, SamplingWindow(rate=30))
    assert frames[0].timestamp == pytest.approx(0.0, abs=0.001)
    assert frames[-1].timestamp < probe.duration
    assert probe.duration == pytest.approx(2.0, abs=0.05)
    window = SamplingWindow(start=1.0, rate=2)
    later = decode_all(decoder, path, Kind.VIDEO, window)
    assert [round(f.timestamp, 3) for f in later] == [1.0, 1.5]  # start_time counts from the first frame too
    assert [gray_level(f.image[48:, 80:]) for f in later] == [level(i) for i in (30, 45)]
    assert probe.expected_frames(window) == 2

"""Format sniffing from magic bytes, and the check of the bytes against the declared kind."""

from __future__ import annotations

from pathlib import Path

import pytest
from decoder_testkit import VideoSpec, animation, halves, save_image, video

from facemint_core.errors import InvalidMedia
from facemint_media_decoder.sniff import Kind, MediaFormat, Sniffed, check_kind, sniff_file


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("JPEG", Sniffed(MediaFormat.JPEG)),
        ("PNG", Sniffed(MediaFormat.PNG)),
        ("WEBP", Sniffed(MediaFormat.WEBP)),
        ("BMP", Sniffed(MediaFormat.BMP)),
        ("HEIF", Sniffed(MediaFormat.HEIC)),
        ("AVIF", Sniffed(MediaFormat.AVIF)),
    ],
)
def test_still_images_are_recognised_by_their_bytes(tmp_path: Path, fmt: str, expected: Sniffed) -> None:
    path = save_image(tmp_path / "media.bin", halves(32, 16), fmt)
    assert sniff_file(path) == expected


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("GIF", Sniffed(MediaFormat.GIF, animated=True)),
        ("PNG", Sniffed(MediaFormat.APNG, animated=True)),
        ("WEBP", Sniffed(MediaFormat.WEBP, animated=True)),
    ],
)
def test_animations_are_recognised_by_their_bytes(tmp_path: Path, fmt: str, expected: Sniffed) -> None:
    path = animation(tmp_path / "media.bin", fmt, [100, 200, 300])
    assert sniff_file(path) == expected


@pytest.mark.parametrize(
    ("spec", "name", "expected"),
    [
        (VideoSpec(frames=3), "a.mp4", MediaFormat.MP4),
        (VideoSpec(frames=3), "a.mov", MediaFormat.MOV),
        (VideoSpec(frames=3), "a.m4v", MediaFormat.M4V),
        (VideoSpec(frames=3), "a.mkv", MediaFormat.MKV),
        (VideoSpec(codec="libvpx-vp9", frames=3), "a.webm", MediaFormat.WEBM),
    ],
)
def test_video_containers_are_recognised_by_their_bytes(
    tmp_path: Path, spec: VideoSpec, name: str, expected: MediaFormat
) -> None:
    path = video(tmp_path / name, spec)
    renamed = path.rename(tmp_path / "no-extension")
    assert sniff_file(renamed) == Sniffed(expected)


def test_quicktime_file_without_ftyp_is_mov(tmp_path: Path) -> None:
    path = tmp_path / "old.mov"
    path.write_bytes(b"\x00\x00\x00\x08wide\x00\x00\x10\x00mdat" + b"\x00" * 64)
    assert sniff_file(path) == Sniffed(MediaFormat.MOV)


def test_text_file_named_mp4_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    path.write_text("<html><body>Not a video, just an error page</body></html>\n" * 20)
    with pytest.raises(InvalidMedia, match="not a supported image, animated or video format"):
        sniff_file(path)


def test_text_starting_with_bm_is_not_a_bitmap(tmp_path: Path) -> None:
    path = tmp_path / "a.bmp"
    path.write_text("BMW owners club newsletter, issue 42, all about engines and wheels")
    with pytest.raises(InvalidMedia):
        sniff_file(path)


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    with pytest.raises(InvalidMedia, match="empty"):
        sniff_file(path)


@pytest.mark.parametrize(
    ("sniffed", "kind", "message"),
    [
        (Sniffed(MediaFormat.JPEG), Kind.VIDEO, "jpeg image, which type 'video' does not accept"),
        (Sniffed(MediaFormat.MP4), Kind.IMAGE, "mp4 video, which type 'image' does not accept"),
        (Sniffed(MediaFormat.GIF, animated=True), Kind.IMAGE, "gif animated GIF, which type 'image'"),
        (Sniffed(MediaFormat.JPEG), Kind.ANIMATED, "jpeg image, which type 'gif' does not accept"),
        (Sniffed(MediaFormat.WEBM), Kind.ANIMATED, "webm video, which type 'gif'"),
    ],
)
def test_kind_mismatch_is_refused_with_a_clear_message(sniffed: Sniffed, kind: Kind, message: str) -> None:
    with pytest.raises(InvalidMedia, match=message):
        check_kind(sniffed, kind)


@pytest.mark.parametrize(
    ("sniffed", "kind"),
    [
        (Sniffed(MediaFormat.APNG, animated=True), Kind.IMAGE),
        (Sniffed(MediaFormat.WEBP, animated=True), Kind.IMAGE),
        (Sniffed(MediaFormat.PNG), Kind.ANIMATED),
        (Sniffed(MediaFormat.HEIC), Kind.IMAGE),
        (Sniffed(MediaFormat.M4V), Kind.VIDEO),
    ],
)
def test_compatible_kinds_are_accepted(sniffed: Sniffed, kind: Kind) -> None:
    check_kind(sniffed, kind)

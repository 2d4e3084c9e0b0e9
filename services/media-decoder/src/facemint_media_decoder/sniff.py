"""Recognise a media file's format from its magic bytes, never from its extension or Content-Type.

Recognised: JPEG, PNG and APNG (an ``acTL`` chunk before the first ``IDAT``), WebP (still or animated, from the
``VP8X`` flags), BMP, GIF, the ISO base media family by its ``ftyp`` brands (HEIC/HEIF, AVIF, MP4, M4V, MOV; old
QuickTime files without ``ftyp`` by their first atom) and Matroska/WebM by the EBML ``DocType``. The declared task
kind must match what the bytes are: :func:`check_kind` raises :class:`~facemint_core.errors.InvalidMedia`
otherwise.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import BinaryIO

from facemint_core.errors import InvalidMedia


class Kind(StrEnum):
    """The kind of media a task declares (the API's ``type``; ``gif`` is ``animated``)."""

    IMAGE = "image"
    ANIMATED = "animated"
    VIDEO = "video"


class MediaFormat(StrEnum):
    """A concrete file format; the value is what ``MediaInfo.container`` reports."""

    JPEG = "jpeg"
    PNG = "png"
    APNG = "apng"
    WEBP = "webp"
    BMP = "bmp"
    HEIC = "heic"
    AVIF = "avif"
    GIF = "gif"
    MP4 = "mp4"
    M4V = "m4v"
    MOV = "mov"
    MKV = "mkv"
    WEBM = "webm"


_VIDEO_FORMATS = frozenset({MediaFormat.MP4, MediaFormat.M4V, MediaFormat.MOV, MediaFormat.MKV, MediaFormat.WEBM})
_STILL_FORMATS = frozenset({MediaFormat.JPEG, MediaFormat.BMP, MediaFormat.HEIC, MediaFormat.AVIF})
_ACCEPTED: dict[Kind, frozenset[MediaFormat]] = {
    # An APNG or an animated WebP is still a PNG or WebP: submitted as an image, its first frame is analysed.
    Kind.IMAGE: _STILL_FORMATS | {MediaFormat.PNG, MediaFormat.APNG, MediaFormat.WEBP},
    # A still PNG or WebP submitted as animated media is an animation of one frame.
    Kind.ANIMATED: frozenset({MediaFormat.GIF, MediaFormat.APNG, MediaFormat.PNG, MediaFormat.WEBP}),
    Kind.VIDEO: _VIDEO_FORMATS,
}

_HEIF_BRANDS = frozenset({b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"})
_HEIF_GENERIC_BRANDS = frozenset({b"mif1", b"msf1", b"mif2"})
_AVIF_BRANDS = frozenset({b"avif", b"avis"})
_M4V_BRANDS = frozenset({b"M4V ", b"M4VH", b"M4VP"})
_MP4_BRANDS = frozenset(
    {
        b"isom",
        b"iso2",
        b"iso3",
        b"iso4",
        b"iso5",
        b"iso6",
        b"iso8",
        b"iso9",
        b"mp41",
        b"mp42",
        b"mp71",
        b"avc1",
        b"dash",
        b"msnv",
        b"f4v ",
        b"3gp4",
        b"3gp5",
        b"3gp6",
        b"3g2a",
        b"M4A ",
    }  # fmt: skip
)
_QUICKTIME_ATOMS = frozenset({b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"})
_BMP_DIB_SIZES = frozenset({12, 16, 40, 52, 56, 64, 108, 124})
_MAX_PNG_CHUNKS = 10_000


@dataclass(frozen=True)
class Sniffed:
    """What the bytes are.

    Attributes:
        format: The concrete format.
        animated: Whether the file holds an animation (GIF, APNG, animated WebP) rather than a still image.
    """

    format: MediaFormat
    animated: bool = False

    @property
    def is_video(self) -> bool:
        """Whether this is a video container."""
        return self.format in _VIDEO_FORMATS


def check_kind(sniffed: Sniffed, kind: Kind) -> None:
    """Raise InvalidMedia when the bytes are not a format accepted for the declared kind."""
    if sniffed.format in _ACCEPTED[kind]:
        return
    if sniffed.is_video:
        what = "video"
    elif sniffed.format == MediaFormat.GIF:
        what = "animated GIF"
    else:
        what = "image"
    wanted = {Kind.IMAGE: "image", Kind.ANIMATED: "gif", Kind.VIDEO: "video"}[kind]
    accepted = ", ".join(sorted(f.value for f in _ACCEPTED[kind]))
    raise InvalidMedia(
        f"the media is a {sniffed.format.value} {what}, which type {wanted!r} does not accept (accepted: {accepted})"
    )


def sniff_file(path: Path) -> Sniffed:
    """Identify the format of a file from its content.

    Raises:
        InvalidMedia: The file is empty or is not a supported format.
    """
    with path.open("rb") as fh:
        head = fh.read(64)
        if not head:
            raise InvalidMedia("the media is empty (0 bytes)")
        sniffed = _sniff(head, fh)
    if sniffed is None:
        raise InvalidMedia(
            "the media is not a supported image, animated or video format "
            "(recognised from its bytes; the extension and Content-Type are ignored)"
        )
    return sniffed


def _sniff(head: bytes, fh: BinaryIO) -> Sniffed | None:
    if head.startswith(b"\xff\xd8\xff"):
        return Sniffed(MediaFormat.JPEG)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return Sniffed(MediaFormat.APNG, animated=True) if _png_is_animated(fh) else Sniffed(MediaFormat.PNG)
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return Sniffed(MediaFormat.GIF, animated=True)
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        animated = head[12:16] == b"VP8X" and len(head) > 20 and bool(head[20] & 0x02)
        return Sniffed(MediaFormat.WEBP, animated=animated)
    if head[:2] == b"BM" and len(head) >= 18 and struct.unpack_from("<I", head, 14)[0] in _BMP_DIB_SIZES:
        return Sniffed(MediaFormat.BMP)
    if head[:4] == b"\x1a\x45\xdf\xa3":
        doctype = _ebml_doctype(head)
        if doctype == b"webm":
            return Sniffed(MediaFormat.WEBM)
        if doctype == b"matroska":
            return Sniffed(MediaFormat.MKV)
        return None
    if len(head) >= 12 and head[4:8] == b"ftyp":
        return _sniff_ftyp(head)
    if len(head) >= 8 and head[4:8] in _QUICKTIME_ATOMS:
        atom_size = struct.unpack_from(">I", head)[0]
        if atom_size == 1 or atom_size >= 8:  # 1: a 64-bit size follows
            return Sniffed(MediaFormat.MOV)
    return None


def _sniff_ftyp(head: bytes) -> Sniffed | None:
    box_size = struct.unpack_from(">I", head)[0]
    major = head[8:12]
    end = min(max(box_size, 16), len(head))
    brands = {major} | {head[i : i + 4] for i in range(16, end - 3, 4)}
    if major in _AVIF_BRANDS or (major in _HEIF_GENERIC_BRANDS and brands & _AVIF_BRANDS):
        return Sniffed(MediaFormat.AVIF)
    if major in _HEIF_BRANDS or major in _HEIF_GENERIC_BRANDS:
        return Sniffed(MediaFormat.HEIC)
    if major == b"qt  ":
        return Sniffed(MediaFormat.MOV)
    if major in _M4V_BRANDS:
        return Sniffed(MediaFormat.M4V)
    if brands & _MP4_BRANDS:
        return Sniffed(MediaFormat.MP4)
    return None


def _png_is_animated(fh: BinaryIO) -> bool:
    """Walk the PNG chunks up to the first IDAT; an acTL chunk before it makes the file an APNG."""
    fh.seek(8)
    for _ in range(_MAX_PNG_CHUNKS):
        header = fh.read(8)
        if len(header) < 8:
            return False
        length, kind = struct.unpack(">I4s", header)
        if kind == b"acTL":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        fh.seek(length + 4, 1)
    return False


def _read_vint(data: bytes, pos: int, keep_marker: bool) -> tuple[int, int]:
    """Read an EBML variable-length integer at ``pos``; return its value and the position after it.

    Raises:
        ValueError: The bytes do not hold a valid variable-length integer.
    """
    if pos >= len(data) or data[pos] == 0:
        raise ValueError("invalid EBML variable-length integer")
    first = data[pos]
    length = 8 - first.bit_length() + 1
    if pos + length > len(data):
        raise ValueError("truncated EBML variable-length integer")
    value = first if keep_marker else first & ((1 << (8 - length)) - 1)
    for byte in data[pos + 1 : pos + length]:
        value = (value << 8) | byte
    return value, pos + length


def _ebml_doctype(head: bytes) -> bytes | None:
    """The DocType of an EBML header (``webm`` or ``matroska``), or None."""
    try:
        header_size, pos = _read_vint(head, 4, keep_marker=False)
        end = min(pos + header_size, len(head))
        while pos < end:
            element_id, pos = _read_vint(head, pos, keep_marker=True)
            size, pos = _read_vint(head, pos, keep_marker=False)
            if element_id == 0x4282:
                return head[pos : pos + size]
            pos += size
    except ValueError:
        return None
    return None

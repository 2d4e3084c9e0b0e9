"""Frame delays of animated images (GIF, APNG, animated WebP), read from the file structure without decoding.

The timeline gives each frame's timestamp (the sum of the delays before it) and the animation's duration, so that
probing is cheap and sampling is exact. A delay of 10 ms or less is shown for 100 ms, as every major browser does
(many GIFs declare 0); :data:`MIN_DELAY_MS` and :data:`DEFAULT_DELAY_MS` hold that rule.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from itertools import accumulate
from pathlib import Path

from facemint_core.errors import InvalidMedia
from facemint_media_decoder.sniff import MediaFormat

MIN_DELAY_MS = 10.0
DEFAULT_DELAY_MS = 100.0


@dataclass(frozen=True)
class Timeline:
    """The frames of an animation.

    Attributes:
        delays_ms: How long each frame is shown, after the browser rule for tiny delays.
        skip_first: The file's first picture is not part of the animation (an APNG default image), so the
            decoder's frame ``i`` is animation frame ``i - 1``.
    """

    delays_ms: tuple[float, ...]
    skip_first: bool = False

    @property
    def timestamps(self) -> list[float]:
        """Seconds at which each frame appears."""
        return [ms / 1000.0 for ms in accumulate(self.delays_ms[:-1], initial=0.0)]

    @property
    def duration(self) -> float:
        """Seconds the animation lasts (one loop)."""
        return sum(self.delays_ms) / 1000.0


def _effective(delay_ms: float) -> float:
    return DEFAULT_DELAY_MS if delay_ms <= MIN_DELAY_MS else delay_ms


def read_timeline(path: Path, fmt: MediaFormat) -> Timeline:
    """Read the frame delays of a GIF, APNG or WebP file (a still PNG or WebP is one frame).

    Raises:
        InvalidMedia: The structure is truncated or malformed.
    """
    with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
        try:
            if fmt == MediaFormat.GIF:
                return _gif(data)
            if fmt in (MediaFormat.APNG, MediaFormat.PNG):
                return _apng(data)
            if fmt == MediaFormat.WEBP:
                return _webp(data)
        except (struct.error, IndexError, ValueError):
            raise InvalidMedia(f"the {fmt.value} file is truncated or malformed") from None
    raise ValueError(f"{fmt} is not an animated format")


def _skip_sub_blocks(data: mmap.mmap, pos: int) -> int:
    while True:
        size = data[pos]
        pos += 1
        if size == 0:
            return pos
        pos += size


def _gif(data: mmap.mmap) -> Timeline:
    packed = data[10]
    pos = 13 + (3 << ((packed & 0x07) + 1) if packed & 0x80 else 0)
    delays: list[float] = []
    pending = 0.0
    while pos < len(data):
        block = data[pos]
        if block == 0x3B:  # trailer
            break
        if block == 0x21:  # extension
            label = data[pos + 1]
            if label == 0xF9 and data[pos + 2] >= 4:  # graphic control extension: delay in 1/100 s
                pending = struct.unpack_from("<H", data, pos + 4)[0] * 10.0
            pos = _skip_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image descriptor
            flags = data[pos + 9]
            pos += 10
            if flags & 0x80:
                pos += 3 << ((flags & 0x07) + 1)
            pos = _skip_sub_blocks(data, pos + 1)  # after the LZW minimum code size
            delays.append(_effective(pending))
            pending = 0.0
        else:
            break  # garbage after the last frame: browsers stop here too
    if not delays:
        raise InvalidMedia("the gif file holds no frame")
    return Timeline(tuple(delays))


def _apng(data: mmap.mmap) -> Timeline:
    pos = 8
    delays: list[float] = []
    seen_idat = False
    first_fctl_after_idat = False
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        body = pos + 8
        if kind == b"fcTL":
            if not delays and seen_idat:
                first_fctl_after_idat = True
            num, den = struct.unpack_from(">HH", data, body + 20)
            delays.append(_effective(num * 1000.0 / (den or 100)))
        elif kind == b"IDAT":
            seen_idat = True
        elif kind == b"IEND":
            break
        pos = body + length + 4
    if not delays:
        return Timeline((DEFAULT_DELAY_MS,))
    return Timeline(tuple(delays), skip_first=first_fctl_after_idat)


def _webp(data: mmap.mmap) -> Timeline:
    pos = 12
    delays: list[float] = []
    while pos + 8 <= len(data):
        kind, length = struct.unpack_from("<4sI", data, pos)
        if kind == b"ANMF":
            duration = int.from_bytes(data[pos + 8 + 12 : pos + 8 + 15], "little")
            delays.append(_effective(float(duration)))
        pos += 8 + length + (length & 1)
    if not delays:
        return Timeline((DEFAULT_DELAY_MS,))
    return Timeline(tuple(delays))

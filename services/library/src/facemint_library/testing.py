"""Test support: a scripted media-decoder and an in-process library gRPC server on 127.0.0.1.

Used by the library's and the gateway's tests. :class:`FakeMediaDecoder` is a real gRPC server whose
``AnalyzeMedia`` answers from a table of URL -> faces, so that enrolment and compare logic run end to end
through gRPC with embeddings chosen by the test.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import grpc
import numpy as np
import numpy.typing as npt

from facemint.common.v1 import common_pb2
from facemint.library.v1 import library_pb2_grpc
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc
from facemint_core.db import create_pool
from facemint_core.errors import FacemintError, InvalidMedia
from facemint_core.grpcutil import ServerInterceptor, open_channel
from facemint_core.metrics import RpcMetrics
from facemint_core.settings import DatabaseSettings
from facemint_library.calibration import Calibration, Calibrations
from facemint_library.identification import MarginRule
from facemint_library.media import MediaAnalyzer
from facemint_library.service import LibraryService
from facemint_library.settings import LibrarySettings, QdrantSettings
from facemint_library.store import VectorStore, make_store

TEST_MODEL = "test-model"
OTHER_TEST_MODEL = "other-model"
TEST_MARGIN_RULE = MarginRule(floor=0.55, margin=0.15, min_cohort=5)
"""The test model's open-set rule: a best person from score 0.55 (cosine 0.267) when 0.15 above the second best and
at least five other persons were scored."""
# Cosine 0.4 is the decision threshold (score 0.70) of both test models.
TEST_CALIBRATIONS = Calibrations(
    [
        Calibration(
            model,
            "1",
            ((-1.0, 0.0), (0.0, 0.25), (0.4, 0.70), (0.7, 0.90), (1.0, 1.0)),
            identification=TEST_MARGIN_RULE if model == TEST_MODEL else None,
        )
        for model in (TEST_MODEL, OTHER_TEST_MODEL)
    ]
)


def harness_settings(backend: str, data_dir: Path, dsn: str = "") -> LibrarySettings:
    """Settings of a library service on one backend; ``qdrant`` runs qdrant-client's local mode (``:memory:``)."""
    return LibrarySettings(
        vector_backend="qdrant" if backend == "qdrant" else "edge",
        data_dir=data_dir,
        qdrant=QdrantSettings(location=":memory:"),
        database=DatabaseSettings(dsn=dsn or "postgresql://unused@127.0.0.1:1/none", min_pool_size=0, max_pool_size=4),
    )


def make_face(
    vector: npt.ArrayLike,
    model_id: str,
    model_version: str = "1",
    bbox: tuple[float, float, float, float] = (100.0, 80.0, 120.0, 140.0),
    quality: float | None = 0.9,
) -> common_pb2.Face:
    """A face record as the media-decoder returns it."""
    values = np.asarray(vector, dtype=np.float32)
    attributes = common_pb2.Attributes()
    if quality is not None:
        attributes.quality = quality
    return common_pb2.Face(
        bbox=common_pb2.BBox(x=bbox[0], y=bbox[1], width=bbox[2], height=bbox[3]),
        confidence=0.99,
        attributes=attributes,
        embedding=common_pb2.Embedding(
            values=values.tolist(),
            model_id=model_id,
            model_version=model_version,
            raw_norm=float(np.linalg.norm(values)),
        ),
    )


class FakeMediaDecoder(media_decoder_pb2_grpc.MediaDecoderServiceServicer):  # type: ignore[misc]
    """Answers ``AnalyzeMedia`` from :attr:`images`; an unknown URL is ``invalid_media``."""

    def __init__(self) -> None:
        self.images: dict[str, Sequence[common_pb2.Face] | FacemintError] = {}
        self.requests: list[media_decoder_pb2.AnalyzeMediaRequest] = []

    async def AnalyzeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.AnalyzeMediaRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[media_decoder_pb2.AnalyzeMediaResponse]:
        """One media-info item, then one frame with the scripted faces."""
        self.requests.append(request)
        entry = self.images.get(request.media_url)
        if entry is None:
            raise InvalidMedia(f"unable to fetch media at {request.media_url}")
        if isinstance(entry, FacemintError):
            raise entry
        yield media_decoder_pb2.AnalyzeMediaResponse(
            media_info=media_decoder_pb2.MediaInfo(width=640, height=480, container="jpeg", expected_frames=1)
        )
        yield media_decoder_pb2.AnalyzeMediaResponse(frame=media_decoder_pb2.FrameResult(index=0, faces=list(entry)))

    async def ProbeMedia(  # noqa: N802 - gRPC method name
        self, request: media_decoder_pb2.ProbeMediaRequest, context: grpc.aio.ServicerContext
    ) -> media_decoder_pb2.ProbeMediaResponse:
        """Not used by the library."""
        raise NotImplementedError("the scripted media-decoder only analyses")


@functools.cache
def _interceptor() -> ServerInterceptor:
    """One interceptor per process: its Prometheus metrics can be registered only once."""
    return ServerInterceptor(RpcMetrics("library-test"))


async def _serve(register: Callable[[grpc.aio.Server], None]) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(interceptors=[_interceptor()])
    register(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


@dataclass
class LibraryHarness:
    """A running library service and what it is made of."""

    target: str
    stub: library_pb2_grpc.LibraryServiceStub
    service: LibraryService
    store: VectorStore
    pool: asyncpg.Pool
    decoder: FakeMediaDecoder


@contextlib.asynccontextmanager
async def serve_library(
    settings: LibrarySettings, calibrations: Calibrations, media_decoder_target: str = ""
) -> AsyncIterator[LibraryHarness]:
    """Start a scripted media-decoder and the library service (on ``settings``' database and store) on free ports.

    With ``media_decoder_target``, the service talks to that (real) media-decoder instead of the scripted one.
    """
    decoder = FakeMediaDecoder()
    decoder_server, decoder_port = await _serve(
        lambda s: media_decoder_pb2_grpc.add_MediaDecoderServiceServicer_to_server(decoder, s)
    )
    pool = await create_pool(settings.database)
    store = make_store(settings)
    await store.open()
    decoder_channel = open_channel(media_decoder_target or f"127.0.0.1:{decoder_port}")
    service = LibraryService(settings, pool, store, MediaAnalyzer(decoder_channel, 10.0), calibrations)
    server, port = await _serve(lambda s: library_pb2_grpc.add_LibraryServiceServicer_to_server(service, s))
    channel = open_channel(f"127.0.0.1:{port}", typed_errors=False)  # the tests look at the statuses
    try:
        yield LibraryHarness(
            f"127.0.0.1:{port}", library_pb2_grpc.LibraryServiceStub(channel), service, store, pool, decoder
        )
    finally:
        await channel.close()
        await server.stop(0)
        await decoder_channel.close()
        await decoder_server.stop(0)
        await store.close()
        await pool.close()

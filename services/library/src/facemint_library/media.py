"""The media-decoder as the library sees it: fetch and analyse one image, return its faces with embeddings."""

from __future__ import annotations

import grpc

from facemint.common.v1 import common_pb2
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc

ENROL_ATTRIBUTES = ("quality",)
DEADLINE_MARGIN_SECONDS = 1.0
"""How much earlier than its caller's deadline the media-decoder's deadline ends."""


class MediaAnalyzer:
    """Calls ``MediaDecoderService.AnalyzeMedia`` for still images."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = media_decoder_pb2_grpc.MediaDecoderServiceStub(channel)
        self._timeout = timeout_seconds

    async def image_faces(
        self, url: str, min_face_size: int = 1, caller_remaining: float | None = None
    ) -> list[common_pb2.Face]:
        """The faces of the image at ``url``, with embedding and quality.

        Args:
            url: The image URL (fetched by the media-decoder, which guards against SSRF and oversized media).
            min_face_size: Faces with a smaller box side are not reported by the analysis, unless the image has no
                larger face: then its largest face is reported whatever its size (``largest_face_fallback``).
            caller_remaining: Seconds left of the caller's deadline: the media-decoder's deadline ends
                :data:`DEADLINE_MARGIN_SECONDS` before it, so that each hop's deadline exceeds the next one's and a
                slow media host is reported by the media-decoder (``invalid_media``), not as the caller's deadline.

        Raises:
            FacemintError: what the media-decoder raised (``invalid_media``, ``payload_too_large``...).
        """
        request = media_decoder_pb2.AnalyzeMediaRequest(
            media_url=url,
            kind=common_pb2.MEDIA_KIND_IMAGE,
            options=common_pb2.AnalyzeOptions(
                min_face_size=min_face_size,
                attributes=list(ENROL_ATTRIBUTES),
                want_embeddings=True,
                largest_face_fallback=True,
            ),
        )
        faces: list[common_pb2.Face] = []
        timeout = self._timeout
        if caller_remaining is not None:
            timeout = max(0.1, min(timeout, caller_remaining - DEADLINE_MARGIN_SECONDS))
        async for item in self._stub.AnalyzeMedia(request, timeout=timeout):
            if item.WhichOneof("item") == "frame":
                faces.extend(item.frame.faces)
        return faces

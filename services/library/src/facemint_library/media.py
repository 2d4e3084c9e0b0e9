"""The media-decoder as the library sees it: fetch and analyse one image, return its faces with embeddings."""

from __future__ import annotations

import grpc

from facemint.common.v1 import common_pb2
from facemint.media_decoder.v1 import media_decoder_pb2, media_decoder_pb2_grpc

ENROL_ATTRIBUTES = ("quality",)


class MediaAnalyzer:
    """Calls ``MediaDecoderService.AnalyzeMedia`` for still images."""

    def __init__(self, channel: grpc.aio.Channel, timeout_seconds: float) -> None:
        self._stub = media_decoder_pb2_grpc.MediaDecoderServiceStub(channel)
        self._timeout = timeout_seconds

    async def image_faces(self, url: str, min_face_size: int = 1) -> list[common_pb2.Face]:
        """Every face of the image at ``url``, with embedding and quality.

        Args:
            url: The image URL (fetched by the media-decoder, which guards against SSRF and oversized media).
            min_face_size: Faces with a smaller box side are not reported by the analysis.

        Raises:
            FacemintError: what the media-decoder raised (``invalid_media``, ``payload_too_large``...).
        """
        request = media_decoder_pb2.AnalyzeMediaRequest(
            media_url=url,
            kind=common_pb2.MEDIA_KIND_IMAGE,
            options=common_pb2.AnalyzeOptions(
                min_face_size=min_face_size, attributes=list(ENROL_ATTRIBUTES), want_embeddings=True
            ),
        )
        faces: list[common_pb2.Face] = []
        async for item in self._stub.AnalyzeMedia(request, timeout=self._timeout):
            if item.WhichOneof("item") == "frame":
                faces.extend(item.frame.faces)
        return faces

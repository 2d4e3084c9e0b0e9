"""MediaPipe's canonical face model: a minimal protobuf reader cuts the 468 vertices out of the npm package."""

from __future__ import annotations

import io
import re
import struct
from collections.abc import Iterator

import numpy as np

from facemint_models.errors import MakeModelsError


def protobuf_fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """Yield (field number, wire type, value) from a protobuf message (varint, fixed and LEN fields)."""

    def varint(pos: int) -> tuple[int, int]:
        result = shift = 0
        while True:
            byte = buf[pos]
            pos += 1
            result |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return result, pos

    pos = 0
    while pos < len(buf):
        key, pos = varint(pos)
        field, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = varint(pos)
        elif wire == 1:
            value, pos = buf[pos : pos + 8], pos + 8
        elif wire == 2:
            length, pos = varint(pos)
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = buf[pos : pos + 4], pos + 4
        else:
            raise MakeModelsError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def extract_canonical_face(blobs: list[bytes]) -> bytes:
    """Cut geometry_pipeline_metadata_landmarks.binarypb out of the packed assets; return a .npy [468, 3].

    The loader JS lists each packed file's byte range. The protobuf holds the canonical mesh in
    field 1 (Mesh3d); its field 3 is the vertex buffer, 5 floats (x, y, z, u, v) per vertex.
    """
    data, loader = blobs[0], blobs[1].decode()
    match = re.search(
        r'"filename":\s*"[^"]*/geometry_pipeline_metadata_landmarks\.binarypb",\s*'
        r'"start":\s*(\d+),\s*"end":\s*(\d+)',
        loader,
    )
    if match is None:
        raise MakeModelsError("geometry_pipeline_metadata_landmarks.binarypb not listed in the loader JS")
    blob = data[int(match.group(1)) : int(match.group(2))]
    meshes = [value for field, _, value in protobuf_fields(blob) if field == 1 and isinstance(value, bytes)]
    if len(meshes) != 1:
        raise MakeModelsError(f"expected one canonical mesh, found {len(meshes)}")
    floats: list[float] = []
    vertex_type = 0
    for field, wire, value in protobuf_fields(meshes[0]):
        if field == 1 and isinstance(value, int):
            vertex_type = value
        elif field == 3 and isinstance(value, bytes):  # packed (wire type 2) or one fixed32 (wire type 5)
            floats.extend(np.frombuffer(value, dtype="<f4").tolist() if wire == 2 else struct.unpack("<f", value))
    if vertex_type != 0 or len(floats) != 468 * 5:
        raise MakeModelsError(f"unexpected canonical mesh: vertex_type={vertex_type}, {len(floats)} floats")
    vertices = np.asarray(floats, dtype=np.float32).reshape(468, 5)[:, :3].copy()
    out = io.BytesIO()
    np.save(out, vertices, allow_pickle=False)
    return out.getvalue()

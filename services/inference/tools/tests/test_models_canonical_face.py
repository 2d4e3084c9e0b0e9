"""The canonical face mesh: cut out of a packed-assets blob by the loader's byte range, vertices decoded from the
protobuf (written here by hand: field 1 = Mesh3d {1: vertex_type, 3: packed vertex floats})."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from facemint_models.canonical_face import extract_canonical_face
from facemint_models.errors import MakeModelsError


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    """One protobuf field; LEN fields (wire type 2) get their length prefix."""
    return varint(number << 3 | wire) + (varint(len(payload)) + payload if wire == 2 else payload)


def packed_assets(vertices: np.ndarray, *, vertex_type: int = 0) -> list[bytes]:
    """The npm package's two members: the packed data (other files around ours) and the loader JS naming its range."""
    floats = np.concatenate([vertices, np.full((len(vertices), 2), 0.5, np.float32)], axis=1).astype("<f4")
    mesh = field(1, 0, varint(vertex_type)) + field(2, 0, varint(4)) + field(3, 2, floats.tobytes())
    other_fields = field(2, 5, struct.pack("<f", 1.5)) + field(4, 1, struct.pack("<d", -1.2345))  # fixed32, fixed64
    metadata = other_fields + field(1, 2, mesh) + field(5, 0, varint(300))
    before, after = b"\x01" * 37, b"\x02" * 11
    start, end = len(before), len(before) + len(metadata)
    loader = (
        '{"files": [{"filename": "/a/other.bin", "start": 0, "end": 37}, '
        f'{{"filename": "/x/geometry_pipeline_metadata_landmarks.binarypb", "start": {start}, "end": {end}}}]}}'
    )
    return [before + metadata + after, loader.encode()]


def test_the_468_vertices_come_out_as_a_float32_npy() -> None:
    vertices = np.random.default_rng(5).normal(size=(468, 3)).astype(np.float32)

    array = np.load(io.BytesIO(extract_canonical_face(packed_assets(vertices))))

    assert array.dtype == np.float32 and array.shape == (468, 3)
    np.testing.assert_array_equal(array, vertices)


def test_a_mesh_of_another_size_or_vertex_type_is_refused() -> None:
    with pytest.raises(MakeModelsError, match="unexpected canonical mesh"):
        extract_canonical_face(packed_assets(np.zeros((467, 3), np.float32)))
    with pytest.raises(MakeModelsError, match="vertex_type=1"):
        extract_canonical_face(packed_assets(np.zeros((468, 3), np.float32), vertex_type=1))

#!/usr/bin/env bash
# Regenerates the Python code of every proto under protos/ into libs/facemint-proto/src (make proto).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=libs/facemint-proto/src
rm -rf "$OUT/facemint"
mkdir -p "$OUT"
mapfile -t files < <(cd protos && find facemint -name '*.proto' | sort)
# mypy-protobuf's plugins write the .pyi stubs of the messages and of the gRPC stubs and servicers, so that mypy
# checks every call site (a missing RPC, a wrong field type).
BIN=$(cd "$(dirname "$PY")" && pwd)
(cd protos && "$BIN/$(basename "$PY")" -m grpc_tools.protoc -I . \
  --plugin=protoc-gen-mypy="$BIN/protoc-gen-mypy" --plugin=protoc-gen-mypy_grpc="$BIN/protoc-gen-mypy_grpc" \
  --python_out="../$OUT" --mypy_out=quiet:"../$OUT" --grpc_python_out="../$OUT" --mypy_grpc_out=quiet:"../$OUT" "${files[@]}")
# Explicit packages, so that tools and installers see a regular package tree, marked as typed.
find "$OUT/facemint" -type d -exec sh -c 'printf "" > "$1/__init__.py"' _ {} \;
printf "" > "$OUT/facemint/py.typed"  # the .pyi stubs are the types of the package (PEP 561)
echo "generated $(find "$OUT/facemint" -name '*_pb2*.py*' | wc -l) files into $OUT/facemint"

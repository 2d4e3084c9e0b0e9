#!/usr/bin/env bash
# Regenerates the Python code of every proto under protos/ into libs/facemint-proto/src (make proto).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
OUT=libs/facemint-proto/src
rm -rf "$OUT/facemint"
mkdir -p "$OUT"
mapfile -t files < <(cd protos && find facemint -name '*.proto' | sort)
(cd protos && "../$PY" -m grpc_tools.protoc -I . \
  --python_out="../$OUT" --pyi_out="../$OUT" --grpc_python_out="../$OUT" "${files[@]}")
# Explicit packages, so that tools and installers see a regular package tree.
find "$OUT/facemint" -type d -exec sh -c 'printf "" > "$1/__init__.py"' _ {} \;
echo "generated $(find "$OUT/facemint" -name '*_pb2*.py*' | wc -l) files into $OUT/facemint"

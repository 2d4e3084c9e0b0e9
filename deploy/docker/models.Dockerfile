# syntax=docker/dockerfile:1
# The model repository image: triton-models/ (config.pbtxt files plus the ONNX weights that `make models` puts in
# <model>/1/) at /triton-models. The chart copies it into an emptyDir with an initContainer (models.source=image) for
# Triton and for the inference service's in-process ONNX Runtime runner. Build it from the repository root after
# `make models`:
#   docker build -f deploy/docker/models.Dockerfile -t ghcr.io/facemint/models:0.1.0 .
# Version it with the models, not with the code: a new tag per model change, set as models.image.tag.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE}
COPY --chown=10001:10001 triton-models/ /triton-models/
# Refuse to build an image without weights (make models was not run).
RUN test -n "$(find /triton-models -name model.onnx -print -quit)" \
 || (echo "triton-models/ has no */1/model.onnx: run make models first" >&2 && exit 1)
USER 10001:10001

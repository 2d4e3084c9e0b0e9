# The model repository image: the models of one pack (config.pbtxt, <model>/1/model.onnx and assets such as
# face_mesh/canonical_face_468.npy) at /triton-models. The chart copies it into an emptyDir with an initContainer
# (models.source=image) for Triton and for the inference service's in-process ONNX Runtime runner; compose copies it
# into the model volume (mounted at /models, which the image creates for uid 10001). `make images` stages the context (build/images/models/triton-models/, after `make models`)
# with the open pack unless PACK=insightface or PACK=all is asked for, and tags ghcr.io/facemint/models:<version>-<pack>
# (the open pack also as :<version>). Only a pack's own models are copied: Triton with --model-control-mode=none
# refuses to start on a config.pbtxt without weights.
# Version it with the models, not with the code: a new tag per model change, set as models.image.tag.
ARG BASE_IMAGE=python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91

FROM ${BASE_IMAGE}
COPY --chown=10001:10001 triton-models/ /triton-models/
# Refuse to build an image with a model that has no weights (make models was not run for this pack).
RUN for config in /triton-models/*/config.pbtxt; do \
      test -f "$(dirname "$config")/1/model.onnx" || { echo "$config has no 1/model.onnx: run make models" >&2; exit 1; }; \
    done \
 && install -d -o 10001 -g 10001 /models
ARG VERSION=0.1.0
ARG REVISION=unknown
ARG SOURCE=https://github.com/facemint/facemint
ARG LICENSES=NOASSERTION
ARG BASE_IMAGE
LABEL org.opencontainers.image.title="facemint-models" \
      org.opencontainers.image.description="Facemint model repository (Triton layout, ONNX)" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="${LICENSES}" \
      org.opencontainers.image.base.name="${BASE_IMAGE}"
USER 10001:10001

#!/usr/bin/env bash
# Build a Debian 12 + Python 3.11 base image locally with debootstrap, for machines that cannot pull the default base
# (the official Python slim image pinned by digest). Every image then builds FROM it:
#   deploy/docker/build-base.sh [TAG]        (default local/debian-python:bookworm; needs root, debootstrap, docker)
#   make images BASE_IMAGE=local/debian-python:bookworm
# The mirror is the first Debian one in this machine's apt sources (override with DEBIAN_MIRROR).
# Python lives at /usr/bin/python3 (3.11.2); /usr/local/bin/python links to it, as in the official image.
set -euo pipefail
tag=${1:-local/debian-python:bookworm}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag already exists"
  exit 0
fi
mirror=${DEBIAN_MIRROR:-$(cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null \
  | grep -v '^[[:space:]]*#' | grep -oE 'https?://[^ ]+/debian/?( |$)' | head -n1 || true)}
: "${mirror:?no Debian mirror in /etc/apt/sources.list*: set DEBIAN_MIRROR}"
root=$(mktemp -d /tmp/facemint-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$root" "$mirror"
ln -s /usr/bin/python3 "$root/usr/local/bin/python"
# Trim what a container never uses: apt's package lists and caches, documentation, locales.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/usr/share/doc/* "$root"/usr/share/man/* \
  "$root"/usr/share/locale/*
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8' \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$tag"
docker image ls "$tag"

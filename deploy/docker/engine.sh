#!/usr/bin/env bash
# What `make images` and `make test-images` need beside Python (`make image-deps`): a Docker engine, Compose and
# debootstrap (for the local base image). Installs Debian's docker.io, docker-compose (1.29) and debootstrap when
# missing (as root on Debian, else prints the command and fails), and starts dockerd in the background when no engine
# answers (machines without systemd, such as CI); its log is var/dockerd.log.
set -euo pipefail
cd "$(dirname "$0")/../.."
missing=()
command -v dockerd >/dev/null || missing+=(docker.io)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$EUID" -ne 0 ] || ! command -v apt-get >/dev/null; then
    echo "image-deps: missing Debian packages: ${missing[*]}. Install them with:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "image-deps: installing ${missing[*]} (apt-get)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -q >/dev/null
  apt-get -o DPkg::Lock::Timeout=300 install -y -q "${missing[@]}" >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
  [ "$EUID" -eq 0 ] || { echo "image-deps: no Docker engine answers; start dockerd" >&2; exit 1; }
  mkdir -p var
  echo "image-deps: starting dockerd (log: var/dockerd.log)" >&2
  nohup dockerd >var/dockerd.log 2>&1 &
  for _ in $(seq 60); do docker info >/dev/null 2>&1 && exit 0; sleep 1; done
  echo "image-deps: dockerd did not start; see var/dockerd.log" >&2
  exit 1
fi

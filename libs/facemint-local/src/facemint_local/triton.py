"""Triton Inference Server on one machine, built only from PyPI packages.

In a cluster, Triton runs from NVIDIA's container and serves ``triton-models/`` with its onnxruntime backend.
That backend is not in any package registry; the ``tritonserver`` 2.51 binary bundled in ``nvidia-pytriton``
has only the Python backend. So the local platform and the tests serve the *same* ONNX files through a
generated repository of Python-backend models whose ``model.py`` (:mod:`facemint_local.triton_model`) runs
each file with ONNX Runtime, with the names, types, dims and ``max_batch_size`` of the cluster configs.

Three pitfalls, each handled here:

1. The stub breaks with numpy 2 (it silently returns empty outputs), so Triton gets its own virtual
   environment with numpy < 2 (:func:`ensure_triton_env`, pins in ``triton-requirements.txt``), which also
   refuses to finish if numpy 2 ended up installed.
2. The stub links ``libpython3.11.so.1.0``: ``LD_LIBRARY_PATH`` must start with that venv Python's ``LIBDIR``
   (else the system's libpython, another patch release, mixes with this standard library and fails with
   ``'_thread.RLock' object has no attribute '_recursion_count'``) and must include ``nvidia_pytriton.libs``
   (the copied stub and backend lose their relative RPATH) (:meth:`TritonEnv.process_env`).
3. The stub finds its site-packages through ``python3`` on ``PATH``: the Triton venv's ``bin/`` goes first,
   and ``PYTHONPATH``/``PYTHONHOME`` of the calling process are dropped (:meth:`TritonEnv.process_env`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from facemint_local.procs import ManagedProcess, free_port, wait_until

TRITON_REQUIREMENTS = Path(__file__).resolve().parents[2] / "triton-requirements.txt"
MODEL_TEMPLATE = Path(__file__).resolve().with_name("triton_model.py")
VENV_DIR_NAME = "triton-venv"
MODEL_VERSION = "1"
_STAMP_NAME = ".facemint-triton-env.json"
_REPOSITORY_MARKER = ".facemint-local-repository"
_BACKEND_FILES = ("libtriton_python.so", "triton_python_backend_utils.py")
_STUB = "triton_python_backend_stub"
# Run by the Triton venv's interpreter: where its libpython and packages are, and which versions it holds.
_PROBE = """
import importlib.metadata, json, sys, sysconfig
import numpy, onnxruntime
print(json.dumps({
    "python_version": "%d.%d" % sys.version_info[:2],
    "libdir": sysconfig.get_config_var("LIBDIR"),
    "libpython": sysconfig.get_config_var("INSTSONAME"),
    "site_packages": sysconfig.get_paths()["purelib"],
    "packages": {d.metadata["Name"]: d.version for d in importlib.metadata.distributions()},
}))
"""


@dataclass(frozen=True)
class TritonEnv:
    """A ready Triton virtual environment: the server binary, the backend directory and the interpreter."""

    root: Path
    python_libdir: Path
    site_packages: Path
    packages: Mapping[str, str] = field(default_factory=dict)

    @property
    def bin_dir(self) -> Path:
        """The venv's ``bin/`` (its ``python3`` is what the stub embeds)."""
        return self.root / "bin"

    @property
    def tritonserver(self) -> Path:
        """The ``tritonserver`` binary bundled in the nvidia-pytriton wheel."""
        return self.site_packages / "pytriton" / "tritonserver" / "bin" / "tritonserver"

    @property
    def libs_dir(self) -> Path:
        """The shared libraries the wheel bundles for the server, the backend and the stub."""
        return self.site_packages / "nvidia_pytriton.libs"

    @property
    def backend_dir(self) -> Path:
        """The ``--backend-directory``: ``python/`` holds the backend library, its utils and the stub."""
        return self.root / "backends"

    def process_env(self, base: Mapping[str, str] | None = None) -> dict[str, str]:
        """The environment the server must run in (pitfalls 2 and 3 of the module docstring).

        Args:
            base: The environment to start from (default: this process's).

        Returns:
            ``base`` with the venv Python's ``LIBDIR`` and ``nvidia_pytriton.libs`` first on ``LD_LIBRARY_PATH``,
            the venv's ``bin/`` first on ``PATH``, ``VIRTUAL_ENV`` set to the venv and ``PYTHONPATH`` /
            ``PYTHONHOME`` removed (they would point the stub at another interpreter's packages).
        """
        env = dict(os.environ if base is None else base)
        for name in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(name, None)
        libs = [str(self.python_libdir), str(self.libs_dir)]
        env["LD_LIBRARY_PATH"] = ":".join(libs + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p])
        env["PATH"] = f"{self.bin_dir}:{env.get('PATH', os.defpath)}"
        env["VIRTUAL_ENV"] = str(self.root)
        return env


def _run(argv: list[str], what: str) -> str:
    """Run a command to completion; return its stdout or raise RuntimeError with the end of its stderr."""
    done = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-20:])
        raise RuntimeError(f"{what} failed (exit {done.returncode}):\n{tail}")
    return done.stdout


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (one builder at a time across processes)."""
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _fingerprint(requirements: Path) -> str:
    """What the venv is built from: the pinned requirements and the interpreter that builds it."""
    digest = hashlib.sha256()
    digest.update(requirements.read_bytes())
    digest.update(sys.version.encode())
    digest.update(str(getattr(sys, "_base_executable", sys.executable)).encode())
    return digest.hexdigest()


def _cached_env(root: Path, fingerprint: str) -> TritonEnv | None:
    """The environment recorded in ``root``'s stamp, if it was built from ``fingerprint`` and is complete."""
    try:
        stamp = json.loads((root / _STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None
    if stamp.get("fingerprint") != fingerprint:
        return None
    env = TritonEnv(root, Path(stamp["libdir"]), Path(stamp["site_packages"]), stamp["packages"])
    required = [env.tritonserver, env.bin_dir / "python3", env.backend_dir / "python" / _STUB]
    return env if all(path.exists() for path in required) else None


def ensure_triton_env(cache_dir: Path, requirements: Path = TRITON_REQUIREMENTS) -> TritonEnv:
    """Create (once) the separate virtual environment that runs Triton and its Python backend.

    The venv lives in ``cache_dir/triton-venv``. It is built with the interpreter running this code (the stub
    must match its minor version), installs ``requirements`` with ``--no-deps`` (every package is pinned there),
    checks numpy < 2 and that the interpreter's shared libpython exists, and lays out the backend directory.
    A stamp records what it was built from; a later call with the same inputs returns at once, a changed
    requirements file or interpreter rebuilds it from scratch. A file lock serialises concurrent callers.

    Args:
        cache_dir: Folder for the venv (created if missing), usually the repository's ``.cache``.
        requirements: The pinned requirements file.

    Returns:
        The ready environment.

    Raises:
        RuntimeError: The venv cannot be built, or it would hit one of the module's pitfalls.
    """
    root = cache_dir / VENV_DIR_NAME
    cache_dir.mkdir(parents=True, exist_ok=True)
    fingerprint = _fingerprint(requirements)
    with _locked(cache_dir / f"{VENV_DIR_NAME}.lock"):
        cached = _cached_env(root, fingerprint)
        if cached is not None:
            return cached
        shutil.rmtree(root, ignore_errors=True)
        _run([sys.executable, "-m", "venv", "--without-pip", str(root)], "creating the Triton venv")
        python = root / "bin" / "python3"
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(python),
                "--disable-pip-version-check",
                "install",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-r",
                str(requirements),
            ],
            "installing the Triton venv's packages",
        )
        probe = json.loads(_run([str(python), "-c", _PROBE], "probing the Triton venv"))
        numpy_version = probe["packages"].get("numpy", "")
        if not numpy_version.startswith("1."):
            raise RuntimeError(f"the Triton venv has numpy {numpy_version}; the Python-backend stub needs numpy < 2")
        libpython = Path(probe["libdir"]) / probe["libpython"]
        if not libpython.is_file():
            raise RuntimeError(
                f"{libpython} is missing: the stub needs the shared libpython of {sys.executable} "
                "(build Python with --enable-shared, as pyenv's and python.org's builds are)"
            )
        env = TritonEnv(root, Path(probe["libdir"]), Path(probe["site_packages"]), probe["packages"])
        _lay_out_backends(env, probe["python_version"])
        stamp = {"fingerprint": fingerprint, **{k: probe[k] for k in ("libdir", "site_packages", "packages")}}
        (root / _STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True))
        return env


def _lay_out_backends(env: TritonEnv, python_version: str) -> None:
    """Copy the Python backend and the stub built for ``python_version`` into ``env.backend_dir/python``."""
    bundle = env.site_packages / "pytriton" / "tritonserver"
    stub = bundle / "python_backend_stubs" / python_version / _STUB
    if not stub.is_file():
        raise RuntimeError(f"nvidia-pytriton has no Python-backend stub for Python {python_version}")
    target = env.backend_dir / "python"
    target.mkdir(parents=True, exist_ok=True)
    for name in _BACKEND_FILES:
        shutil.copy2(bundle / "backends" / "python" / name, target / name)
    shutil.copy2(stub, target / _STUB)


def cluster_model_names(src: Path) -> list[str]:
    """Models of a cluster repository that are complete: ``<name>/config.pbtxt`` and ``<name>/1/model.onnx``."""
    if not src.is_dir():
        return []
    return sorted(
        entry.name
        for entry in src.iterdir()
        if (entry / "config.pbtxt").is_file() and (entry / MODEL_VERSION / "model.onnx").is_file()
    )


def local_model_config(cluster_config: str, onnx_path: Path, intra_op_threads: int = 1) -> str:
    """Turn a cluster ``config.pbtxt`` (onnxruntime backend) into the local Python-backend one.

    Kept: name, ``max_batch_size``, inputs and outputs, dynamic batching, batch-1 warm-up and instance counts.
    Changed: ``backend: "python"`` instead of the platform, CPU instead of GPU instances, no
    onnxruntime-specific ``optimization`` block or GPU parameters, no warm-up at larger batches (they size GPU
    workspaces; on the CPU they only slow the start), and ``onnx_path`` / ``intra_op_threads`` parameters for
    ``model.py``.

    Args:
        cluster_config: The text-format ``ModelConfig`` served in the cluster.
        onnx_path: The ONNX file the local model runs (absolute).
        intra_op_threads: ONNX Runtime threads per model instance.

    Returns:
        The local configuration in protobuf text format.

    Raises:
        ValueError: The cluster model is not an ONNX model.
    """
    config = text_format.Parse(cluster_config, model_config_pb2.ModelConfig())
    if config.platform != "onnxruntime_onnx" and config.backend != "onnxruntime":
        raise ValueError(f"{config.name}: only ONNX models can be served locally (platform {config.platform!r})")
    config.ClearField("platform")
    config.backend = "python"
    config.ClearField("optimization")
    config.parameters.clear()
    single = [warmup for warmup in config.model_warmup if warmup.batch_size <= 1]
    del config.model_warmup[:]
    config.model_warmup.extend(single)
    if config.max_batch_size > 0:
        config.dynamic_batching.SetInParent()
    if not config.instance_group:
        config.instance_group.add()
    for group in config.instance_group:
        group.kind = model_config_pb2.ModelInstanceGroup.KIND_CPU
        group.ClearField("gpus")
    config.parameters["onnx_path"].string_value = str(onnx_path)
    config.parameters["intra_op_threads"].string_value = str(intra_op_threads)
    return str(text_format.MessageToString(config))


def generate_local_repository(
    src: Path = Path("triton-models"),
    dst: Path = Path("var/triton-repository"),
    models: Iterable[str] | None = None,
    intra_op_threads: int = 1,
) -> list[str]:
    """Write a Python-backend model repository serving the ONNX files of the cluster repository ``src``.

    For every complete model in ``src`` (or only those named in ``models``), ``dst/<name>/config.pbtxt`` is
    derived from the cluster one (:func:`local_model_config`) and ``dst/<name>/1/model.py`` is a copy of the
    package's template. The ONNX files stay where they are and are referenced by absolute path. ``dst`` is
    rebuilt from scratch each time (Triton would try to load any stale model left in it); to avoid deleting
    anything else, it must be missing, empty or a repository this function wrote.

    Args:
        src: The cluster repository (``triton-models``).
        dst: Where to write the local repository.
        models: Names to include (default: every complete model in ``src``).
        intra_op_threads: ONNX Runtime threads per model instance.

    Returns:
        The names of the models written, sorted.

    Raises:
        ValueError: A requested model is not complete in ``src``.
        FileExistsError: ``dst`` holds something this function did not write.
    """
    available = cluster_model_names(src)
    names = available if models is None else sorted(set(models))
    missing = sorted(set(names) - set(available))
    if missing:
        raise ValueError(f"not in {src} (run `make models`): {', '.join(missing)}")
    if dst.exists() and any(dst.iterdir()) and not (dst / _REPOSITORY_MARKER).exists():
        raise FileExistsError(f"{dst} is not empty and was not generated by facemint_local.triton")
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    (dst / _REPOSITORY_MARKER).write_text(f"generated from {src.resolve()}\n")
    for name in names:
        onnx_path = (src / name / MODEL_VERSION / "model.onnx").resolve()
        config = local_model_config((src / name / "config.pbtxt").read_text(), onnx_path, intra_op_threads)
        header = f"# Generated by facemint_local.triton from {src.resolve() / name / 'config.pbtxt'}; do not edit.\n"
        (dst / name / MODEL_VERSION).mkdir(parents=True)
        (dst / name / "config.pbtxt").write_text(header + config)
        shutil.copyfile(MODEL_TEMPLATE, dst / name / MODEL_VERSION / "model.py")
    return names


@dataclass
class TritonServer:
    """The bundled ``tritonserver`` serving a local (Python-backend) repository on 127.0.0.1."""

    repository: Path
    env: TritonEnv
    log_dir: Path | None = None
    http_port: int = 0
    grpc_port: int = 0
    metrics_port: int = 0

    def __post_init__(self) -> None:
        self.http_port = self.http_port or free_port()
        self.grpc_port = self.grpc_port or free_port()
        self.metrics_port = self.metrics_port or free_port()
        self.proc: ManagedProcess | None = None

    @property
    def grpc_url(self) -> str:
        """``host:port`` of the gRPC endpoint (what ``tritonclient.grpc`` takes)."""
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def http_url(self) -> str:
        """Base URL of the HTTP endpoint."""
        return f"http://127.0.0.1:{self.http_port}"

    def start(self, timeout: float = 180.0) -> None:
        """Start the server and wait until it and every model are ready (warm-up included).

        CUDA, NVML and DCGM errors in the log are expected on a host without a GPU and harmless.
        """
        self.proc = ManagedProcess(
            "triton",
            [
                str(self.env.tritonserver),
                f"--model-repository={self.repository}",
                f"--backend-directory={self.env.backend_dir}",
                "--http-address=127.0.0.1",
                f"--http-port={self.http_port}",
                "--grpc-address=127.0.0.1",
                f"--grpc-port={self.grpc_port}",
                "--metrics-address=127.0.0.1",
                f"--metrics-port={self.metrics_port}",
                "--allow-gpu-metrics=false",
            ],
            (self.log_dir or self.repository.parent) / "triton.log",
            env=self.env.process_env(),
        )
        self.proc.start()
        wait_until(self._ready, timeout, "Triton", interval=0.2)

    def _ready(self) -> bool:
        if self.proc is not None and not self.proc.alive():
            raise RuntimeError(f"tritonserver exited:\n{self.proc.tail(40)}")
        try:
            with urllib.request.urlopen(f"{self.http_url}/v2/health/ready", timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop(self, grace: float = 15.0) -> None:
        """Stop the server (SIGTERM lets it unload the models and end the stubs; SIGKILL after the grace)."""
        if self.proc is not None:
            self.proc.stop(grace)

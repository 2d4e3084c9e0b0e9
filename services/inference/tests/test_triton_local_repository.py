"""The local Triton model repository and launcher environment, without starting a server (unit tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from facemint_local.triton import MODEL_TEMPLATE, TritonEnv, generate_local_repository, local_model_config

CLUSTER_CONFIG = """
name: "embedder"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "input.1" data_type: TYPE_FP32 dims: [ 3, 112, 112 ] } ]
output [ { name: "516" data_type: TYPE_FP32 dims: [ 512 ] } ]
dynamic_batching { }
instance_group [ { kind: KIND_GPU count: 2 gpus: [ 0 ] } ]
optimization { execution_accelerators { gpu_execution_accelerator : [ { name : "tensorrt" } ] } }
parameters { key: "cudnn_conv_algo_search" value: { string_value: "1" } }
model_warmup [ { name: "zeros" batch_size: 1
  inputs { key: "input.1" value { data_type: TYPE_FP32 dims: [ 3, 112, 112 ] zero_data: true } } },
  { name: "zeros_batch_64" batch_size: 64
  inputs { key: "input.1" value { data_type: TYPE_FP32 dims: [ 3, 112, 112 ] zero_data: true } } } ]
"""


def parse(text: str) -> model_config_pb2.ModelConfig:
    """A text-format model configuration."""
    return text_format.Parse(text, model_config_pb2.ModelConfig())


def cluster_repository(root: Path, names: list[str]) -> Path:
    """A cluster repository whose models all share CLUSTER_CONFIG (renamed) and a placeholder ONNX file."""
    for name in names:
        (root / name / "1").mkdir(parents=True)
        (root / name / "config.pbtxt").write_text(CLUSTER_CONFIG.replace('"embedder"', f'"{name}"'))
        (root / name / "1" / "model.onnx").write_bytes(b"onnx")
    return root


def test_local_config_keeps_the_served_interface_and_switches_to_the_python_backend() -> None:
    cluster = parse(CLUSTER_CONFIG)

    local = parse(local_model_config(CLUSTER_CONFIG, Path("/models/embedder/1/model.onnx"), intra_op_threads=2))

    assert local.backend == "python" and not local.platform
    assert local.name == cluster.name and local.max_batch_size == cluster.max_batch_size
    assert local.input == cluster.input and local.output == cluster.output
    assert list(local.model_warmup) == [cluster.model_warmup[0]]  # batch 1 only: larger ones size GPU workspaces
    assert local.HasField("dynamic_batching") and not local.HasField("optimization")
    assert [(g.kind, g.count, list(g.gpus)) for g in local.instance_group] == [
        (model_config_pb2.ModelInstanceGroup.KIND_CPU, 2, [])
    ]
    assert dict(local.parameters) == {
        "onnx_path": model_config_pb2.ModelParameter(string_value="/models/embedder/1/model.onnx"),
        "intra_op_threads": model_config_pb2.ModelParameter(string_value="2"),
    }


def test_local_config_refuses_a_model_that_is_not_onnx() -> None:
    with pytest.raises(ValueError, match="only ONNX"):
        local_model_config(CLUSTER_CONFIG.replace("onnxruntime_onnx", "tensorrt_plan"), Path("/m.onnx"))


def test_repository_holds_every_complete_model_with_the_shared_template(tmp_path: Path) -> None:
    source = cluster_repository(tmp_path / "cluster", ["b_model", "a_model"])
    (source / "incomplete" / "1").mkdir(parents=True)

    names = generate_local_repository(source, tmp_path / "local")

    assert names == ["a_model", "b_model"]
    for name in names:
        assert (tmp_path / "local" / name / "1" / "model.py").read_bytes() == MODEL_TEMPLATE.read_bytes()
        config = parse((tmp_path / "local" / name / "config.pbtxt").read_text())
        assert config.name == name
        assert config.parameters["onnx_path"].string_value == str((source / name / "1" / "model.onnx").resolve())


def test_regenerating_drops_models_no_longer_wanted(tmp_path: Path) -> None:
    source = cluster_repository(tmp_path / "cluster", ["a_model", "b_model"])
    generate_local_repository(source, tmp_path / "local")

    assert generate_local_repository(source, tmp_path / "local", models=["b_model"]) == ["b_model"]

    assert not (tmp_path / "local" / "a_model").exists()


def test_a_model_that_make_models_did_not_produce_is_named(tmp_path: Path) -> None:
    source = cluster_repository(tmp_path / "cluster", ["a_model"])

    with pytest.raises(ValueError, match="ghost"):
        generate_local_repository(source, tmp_path / "local", models=["a_model", "ghost"])


def test_a_folder_it_did_not_write_is_never_deleted(tmp_path: Path) -> None:
    source = cluster_repository(tmp_path / "cluster", ["a_model"])
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "notes.txt").write_text("keep me")

    with pytest.raises(FileExistsError):
        generate_local_repository(source, tmp_path / "precious")

    assert (tmp_path / "precious" / "notes.txt").read_text() == "keep me"


def test_server_environment_puts_libpython_pytriton_libs_and_the_venv_first(tmp_path: Path) -> None:
    env = TritonEnv(tmp_path / "venv", Path("/opt/python/lib"), tmp_path / "venv" / "site-packages")
    base = {"PATH": "/usr/bin", "LD_LIBRARY_PATH": "/usr/local/lib", "PYTHONPATH": "/elsewhere", "HOME": "/root"}

    process_env = env.process_env(base)

    assert process_env["LD_LIBRARY_PATH"].split(":") == [
        "/opt/python/lib",
        str(tmp_path / "venv" / "site-packages" / "nvidia_pytriton.libs"),
        "/usr/local/lib",
    ]
    assert process_env["PATH"].split(":")[0] == str(tmp_path / "venv" / "bin")
    assert process_env["VIRTUAL_ENV"] == str(tmp_path / "venv")
    assert "PYTHONPATH" not in process_env and process_env["HOME"] == "/root"


def test_every_cluster_config_is_tuned_for_a_gpu() -> None:
    """The committed configs (from facemint_models.triton.render_config): heuristic cuDNN search, a bounded
    batching delay, warm-up at every common batch size, one served version."""
    configs = sorted((Path(__file__).resolve().parents[3] / "triton-models").glob("*/config.pbtxt"))
    assert len(configs) >= 9
    for path in configs:
        config = parse(path.read_text())
        assert config.parameters["cudnn_conv_algo_search"].string_value == "1", path
        assert config.version_policy.latest.num_versions == 1, path
        batches = [warmup.batch_size for warmup in config.model_warmup]
        if config.max_batch_size > 0:
            assert config.dynamic_batching.max_queue_delay_microseconds > 0, path
            assert batches == sorted({1, min(8, config.max_batch_size), config.max_batch_size}), path
        else:
            assert batches == [1], path


def test_make_models_can_render_tensorrt_fp16_configs(tmp_path: Path) -> None:
    """``--triton-accelerator tensorrt-fp16`` adds ONNX Runtime's TensorRT provider in FP16 to a valid config."""
    tool = Path(__file__).resolve().parents[1] / "tools" / "make_models.py"
    argv = [
        sys.executable,
        str(tool),
        "--only",
        "gender",
        "--out",
        str(tmp_path),
        "--triton-accelerator",
        "tensorrt-fp16",
    ]
    subprocess.run(argv, check=True, capture_output=True, timeout=300)
    config = parse((tmp_path / "gender" / "config.pbtxt").read_text())
    (accelerator,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert accelerator.name == "tensorrt" and accelerator.parameters["precision_mode"] == "FP16"

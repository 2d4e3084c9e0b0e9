"""TritonRunner against a real Triton server: the same outputs as OrtRunner, batching, and unavailability.

The server is the session fixture ``triton_server`` (the binary bundled in nvidia-pytriton serving the ONNX files
of ``make models`` through Python-backend models). ONNX Runtime reads the very file Triton serves: its path comes
from the served model's ``onnx_path`` parameter.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import pytest_asyncio
from tritonclient.grpc import InferInput
from tritonclient.grpc.aio import InferenceServerClient
from tritonclient.utils import InferenceServerException

from facemint_inference.packs import PACKS
from facemint_inference.runners.base import ModelSpec, ModelUnavailable
from facemint_inference.runners.ort import OrtRunner
from facemint_inference.runners.triton import TritonRunner
from facemint_inference.settings import OrtSettings, TritonSettings
from facemint_local.procs import free_port
from facemint_local.triton import TritonServer

pytestmark = pytest.mark.integration

Array = npt.NDArray[Any]
MODEL_NAMES = sorted({model.name for pack in PACKS.values() for model in pack.models})
# Both runtimes run one ONNX Runtime release on the same file; batching may reorder float sums slightly.
RTOL, ATOL = 1e-4, 1e-5


async def served_spec(server: TritonServer, name: str) -> ModelSpec:
    """The ModelSpec of a model Triton serves (its ONNX path read from the served config).

    Every model of both packs is in the generated repository, so a model Triton does not serve is a failure.
    """
    async with InferenceServerClient(server.grpc_url) as client:
        try:
            config = await client.get_model_config(name, as_json=True)
        except InferenceServerException as exc:
            pytest.fail(f"Triton does not serve {name}: {exc}")
    return ModelSpec(name, Path(config["config"]["parameters"]["onnx_path"]["string_value"]))


async def random_inputs(server: TritonServer, name: str, batch: int, seed: int = 0) -> dict[str, Array]:
    """Random float inputs of the served shapes with ``batch`` items."""
    async with InferenceServerClient(server.grpc_url) as client:
        metadata = await client.get_model_metadata(name, as_json=True)
    rng = np.random.default_rng(seed)
    return {
        tensor["name"]: rng.random((batch, *(int(dim) for dim in tensor["shape"][1:])), dtype=np.float32)
        for tensor in metadata["inputs"]
    }


@pytest_asyncio.fixture(loop_scope="session")
async def triton_runner(triton_server: TritonServer) -> AsyncIterator[TritonRunner]:
    """A TritonRunner connected to the session's server (models are loaded by each test)."""
    runner = TritonRunner(TritonSettings(url=triton_server.grpc_url, timeout_seconds=60))
    yield runner
    await runner.close()


@pytest_asyncio.fixture(loop_scope="session")
async def ort_runner(executor: ThreadPoolExecutor) -> AsyncIterator[OrtRunner]:
    """An OrtRunner on the same ONNX files (in the folder's shared executor)."""
    runner = OrtRunner(OrtSettings(), executor)
    yield runner
    await runner.close()


def assert_same_outputs(got: dict[str, Array], expected: dict[str, Array]) -> None:
    """Same output names, shapes and dtypes, and values equal within RTOL/ATOL."""
    assert list(got) == list(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        assert got[name].dtype == value.dtype, name
        np.testing.assert_allclose(got[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("name", MODEL_NAMES)
async def test_triton_and_onnxruntime_give_the_same_outputs(
    name: str, triton_server: TritonServer, triton_runner: TritonRunner, ort_runner: OrtRunner
) -> None:
    spec = await served_spec(triton_server, name)
    await triton_runner.load([spec])
    await ort_runner.load([spec])
    inputs = await random_inputs(triton_server, name, batch=3)

    assert_same_outputs(await triton_runner.infer(name, inputs), await ort_runner.infer(name, inputs))


async def test_a_batch_of_different_faces_returns_each_faces_own_row(
    triton_server: TritonServer, triton_runner: TritonRunner, ort_runner: OrtRunner
) -> None:
    spec = await served_spec(triton_server, "landmark_2d106")
    await triton_runner.load([spec])
    await ort_runner.load([spec])
    inputs = await random_inputs(triton_server, spec.name, batch=6, seed=1)

    batched = await triton_runner.infer(spec.name, inputs)
    for row in range(6):
        single = await ort_runner.infer(spec.name, {key: value[row : row + 1] for key, value in inputs.items()})
        np.testing.assert_allclose(batched["fc1"][row : row + 1], single["fc1"], rtol=RTOL, atol=ATOL)


async def test_concurrent_calls_that_the_server_batches_get_their_own_outputs(
    triton_server: TritonServer, triton_runner: TritonRunner, ort_runner: OrtRunner
) -> None:
    spec = await served_spec(triton_server, "gender")
    await triton_runner.load([spec])
    await ort_runner.load([spec])
    calls = [await random_inputs(triton_server, spec.name, batch=1 + seed % 3, seed=seed) for seed in range(12)]

    answers = await asyncio.gather(*(triton_runner.infer(spec.name, inputs) for inputs in calls))

    for inputs, answer in zip(calls, answers, strict=True):
        assert_same_outputs(answer, await ort_runner.infer(spec.name, inputs))


async def test_a_batch_above_max_batch_size_is_split_into_allowed_calls(
    triton_server: TritonServer, triton_runner: TritonRunner, ort_runner: OrtRunner
) -> None:
    spec = await served_spec(triton_server, "gender")
    await triton_runner.load([spec])
    await ort_runner.load([spec])
    inputs = await random_inputs(triton_server, spec.name, batch=150, seed=2)
    async with InferenceServerClient(triton_server.grpc_url) as client:
        config = await client.get_model_config(spec.name, as_json=True)
        assert int(config["config"]["max_batch_size"]) == 64
        whole = InferInput("images", list(inputs["images"].shape), "FP32")
        whole.set_data_from_numpy(inputs["images"])
        with pytest.raises(InferenceServerException, match="batch"):
            await client.infer(spec.name, [whole])

    assert_same_outputs(await triton_runner.infer(spec.name, inputs), await ort_runner.infer(spec.name, inputs))


async def test_an_empty_batch_returns_empty_outputs_like_onnxruntime(
    triton_server: TritonServer, triton_runner: TritonRunner, ort_runner: OrtRunner
) -> None:
    spec = await served_spec(triton_server, "arcface_w600k_mbf")
    await triton_runner.load([spec])
    await ort_runner.load([spec])
    inputs = await random_inputs(triton_server, spec.name, batch=0)

    assert_same_outputs(await triton_runner.infer(spec.name, inputs), await ort_runner.infer(spec.name, inputs))


async def test_inputs_of_the_wrong_type_are_refused_before_the_call(
    triton_server: TritonServer, triton_runner: TritonRunner
) -> None:
    spec = await served_spec(triton_server, "gender")
    await triton_runner.load([spec])

    with pytest.raises(ValueError, match="FP32"):
        await triton_runner.infer(spec.name, {"images": np.zeros((1, 3, 32, 32), dtype=np.float64)})


async def test_load_names_every_model_the_server_does_not_serve(
    triton_server: TritonServer, triton_runner: TritonRunner
) -> None:
    gender = await served_spec(triton_server, "gender")
    missing = [ModelSpec("no_such_model", Path("nowhere.onnx")), ModelSpec("another_missing", Path("x.onnx"))]

    with pytest.raises(ModelUnavailable) as raised:
        await triton_runner.load([gender, *missing])

    assert "no_such_model" in str(raised.value)
    assert "another_missing" in str(raised.value)
    assert "gender" not in str(raised.value)


async def test_infer_on_a_model_that_was_not_loaded_raises_model_unavailable(triton_runner: TritonRunner) -> None:
    with pytest.raises(ModelUnavailable, match="not loaded"):
        await triton_runner.infer("gender", {"images": np.zeros((1, 3, 32, 32), dtype=np.float32)})


async def test_load_reports_why_when_no_server_answers() -> None:
    runner = TritonRunner(TritonSettings(url=f"127.0.0.1:{free_port()}", timeout_seconds=5))
    try:
        with pytest.raises(ModelUnavailable, match="not reachable"):
            await runner.load([ModelSpec("gender", Path("gender.onnx"))])
    finally:
        await runner.close()


async def test_a_server_that_goes_down_makes_calls_and_reloads_fail_with_the_reason(
    triton_server: TritonServer, tmp_path: Path
) -> None:
    spec = await served_spec(triton_server, "gender")
    shutil.copytree(triton_server.repository / spec.name, tmp_path / "repository" / spec.name)
    server = TritonServer(tmp_path / "repository", triton_server.env, log_dir=tmp_path)
    server.start()
    runner = TritonRunner(TritonSettings(url=server.grpc_url, timeout_seconds=10))
    try:
        await runner.load([spec])
        inputs: dict[str, Array] = {"images": np.zeros((1, 3, 32, 32), dtype=np.float32)}
        assert (await runner.infer(spec.name, inputs))["probabilities"].shape == (1, 2)

        server.stop()

        with pytest.raises(ModelUnavailable, match=spec.name):
            await runner.infer(spec.name, inputs)
        with pytest.raises(ModelUnavailable, match="not reachable"):
            await runner.load([spec])
    finally:
        await runner.close()
        server.stop()


class _Forwarder:
    """A TCP forwarder on 127.0.0.1 to the Triton server, counting the bytes clients sent through it: a second
    address of the same server, so a client's balancing across addresses can be observed."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.sent = 0
        self.server: asyncio.Server | None = None
        self.writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self.server = await asyncio.start_server(self._carry, "127.0.0.1", 0)
        return int(self.server.sockets[0].getsockname()[1])

    async def _carry(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        server_reader, server_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self.writers += [client_writer, server_writer]

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                while data := await reader.read(65536):
                    if writer is server_writer:
                        self.sent += len(data)
                    writer.write(data)
                    await writer.drain()
            except ConnectionError:
                pass
            finally:
                writer.close()

        await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
        for writer in self.writers:
            writer.close()
        await asyncio.sleep(0.1)  # the pipes see end of stream and return


@pytest.mark.parametrize(("policy", "used"), [("round_robin", 2), ("pick_first", 1)])
async def test_round_robin_spreads_calls_over_every_address_of_the_target(
    policy: str, used: int, triton_server: TritonServer
) -> None:
    """Two addresses of one server (as a headless Service resolves to every Triton pod): round robin sends calls
    through both, pick_first (gRPC's default) pins every call to one."""
    forwarders = [_Forwarder(triton_server.grpc_port), _Forwarder(triton_server.grpc_port)]
    ports = [await f.start() for f in forwarders]
    target = "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)
    runner = TritonRunner(TritonSettings(url=target, timeout_seconds=60, load_balancing=policy))  # type: ignore[arg-type]
    try:
        spec = await served_spec(triton_server, "gender")
        await runner.load([spec])
        inputs = await random_inputs(triton_server, spec.name, batch=1)  # about 12 KB a call
        before = [f.sent for f in forwarders]
        for _ in range(6):
            await runner.infer(spec.name, inputs)
        carried = [f.sent - sent for f, sent in zip(forwarders, before, strict=True)]
        assert sum(1 for n in carried if n > 24_000) == used, carried  # two calls or more through each used
    finally:
        await runner.close()
        for f in forwarders:
            await f.stop()

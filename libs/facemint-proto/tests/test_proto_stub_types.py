"""The generated code is typed: mypy, with the workspace's configuration, rejects calls the protos do not define."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[3]

SNIPPET = """
    import grpc

    from facemint.common.v1 import common_pb2
    from facemint.orchestrator.v1 import orchestrator_pb2, orchestrator_pb2_grpc


    async def call(channel: grpc.aio.Channel) -> None:
        stub = orchestrator_pb2_grpc.TaskServiceStub(channel)
        await stub.GetTask(orchestrator_pb2.GetTaskRequest(account_id="a", task_id="t"))
        orchestrator_pb2.TaskSpec(kind=common_pb2.MEDIA_KIND_IMAGE)
        {extra}
"""


def _mypy(tmp_path: Path, extra: str) -> tuple[int, str]:
    source = tmp_path / "snippet.py"
    source.write_text(textwrap.dedent(SNIPPET).format(extra=extra))
    out, err, status = api.run(
        ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache"), str(source)]
    )
    return status, out + err


@pytest.mark.slow
def test_mypy_accepts_the_defined_rpcs_and_rejects_a_missing_one_and_a_string_status(tmp_path: Path) -> None:
    status, report = _mypy(tmp_path, "")
    assert status == 0, report

    status, report = _mypy(tmp_path, "await stub.NoSuchRpc(1, 2, 3)")
    assert status == 1 and '"TaskServiceStub" has no attribute "NoSuchRpc"' in report, report

    status, report = _mypy(tmp_path, 'orchestrator_pb2.Task(status="queued")')
    assert status == 1 and 'Argument "status" to "Task" has incompatible type "str"' in report, report

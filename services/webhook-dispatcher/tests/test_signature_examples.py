"""The verifying code printed in docs/webhooks.md (Python and JavaScript) accepts real signatures and refuses
tampered, stale and foreign ones."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from facemint_webhook_dispatcher.signing import delivery_headers

DOC = Path(__file__).resolve().parents[3] / "docs" / "webhooks.md"
BODY = b'{"event":"task.succeeded","task_id":"task_1","status":"succeeded","result":{"metadata":{"k":"\\u00e9"}}}'


def _snippet(language: str) -> str:
    [code] = re.findall(rf"```{language}\n(.*?)```", DOC.read_text(), flags=re.S)
    return code


def _cases() -> list[tuple[str, dict[str, str], bytes, bool]]:
    now = int(time.time())

    def headers(timestamp: int, secret: str = "whsec_new", previous: str | None = None) -> dict[str, str]:
        made = delivery_headers(
            event="task.succeeded", delivery_id="dlv_1", timestamp=timestamp, body=BODY, secret=secret,
            previous_secret=previous,
        )  # fmt: skip
        return {k.lower(): v for k, v in made.items()}

    return [
        ("authentic", headers(now), BODY, True),
        ("signed by the previous secret during a rotation", headers(now, "whsec_other", "whsec_new"), BODY, True),
        ("tampered body", headers(now), BODY.replace(b"task_1", b"task_2"), False),
        ("stale timestamp", headers(now - 301), BODY, False),
        ("foreign secret", headers(now, "whsec_other"), BODY, False),
        ("missing signature", {"x-facemint-timestamp": str(now)}, BODY, False),
    ]


def _python_verify() -> Callable[[str, dict[str, str], bytes], bool]:
    namespace: dict[str, object] = {}
    exec(compile(_snippet("python"), str(DOC), "exec"), namespace)  # noqa: S102 - our own documentation
    verify = namespace["verify"]
    assert callable(verify)
    return verify  # type: ignore[return-value]


def test_python_example_verifies_deliveries() -> None:
    verify = _python_verify()
    for name, headers, body, expected in _cases():
        assert verify("whsec_new", headers, body) is expected, name


def test_javascript_example_verifies_deliveries(tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed: run `make system-deps`")
    cases = [
        {"name": name, "headers": headers, "body": body.decode(), "expected": expected}
        for name, headers, body, expected in _cases()
    ]
    script = tmp_path / "verify.js"
    script.write_text(
        _snippet("javascript")
        + "\nconst cases = JSON.parse(process.argv[2]);\n"
        + "console.log(JSON.stringify(cases.map((c) => [c.name, verify('whsec_new', c.headers, "
        + "Buffer.from(c.body, 'utf8')) === c.expected])));\n"
    )
    out = subprocess.run([node, str(script), json.dumps(cases)], capture_output=True, text=True, check=True, timeout=30)
    results = json.loads(out.stdout)
    assert results and all(ok for _, ok in results), results

"""Unit tests of settings, errors, ids, timestamps, API keys and JSON logs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext
from pydantic_settings import SettingsConfigDict

from facemint_core import apikeys, errors
from facemint_core.ids import new_id
from facemint_core.logging import JsonFormatter, request_id_var, task_id_var
from facemint_core.settings import ServiceSettings
from facemint_core.timeutil import iso, parse_iso


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="FACEMINT_DEMO_", env_nested_delimiter="__", extra="ignore")


def test_nested_settings_come_from_prefixed_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEMINT_DEMO_HTTP__PORT", "9123")
    monkeypatch.setenv("FACEMINT_DEMO_LOG__LEVEL", "DEBUG")
    settings = DemoSettings()
    assert settings.http.port == 9123
    assert settings.log.level == "DEBUG"


def test_invalid_setting_stops_start_up_with_the_variable_name() -> None:
    code = (
        "from facemint_core.settings import load_settings, ServiceSettings\n"
        "from pydantic_settings import SettingsConfigDict\n"
        "class S(ServiceSettings):\n"
        "    model_config = SettingsConfigDict(env_prefix='FACEMINT_X_', env_nested_delimiter='__')\n"
        "load_settings(S)\n"
    )
    env = {"FACEMINT_X_HTTP__PORT": "not-a-port", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 2
    assert "FACEMINT_X_HTTP__PORT" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_public_code_maps_to_its_http_status() -> None:
    expected = {
        "invalid_request": 400, "invalid_media": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404,
        "conflict": 409, "payload_too_large": 413, "no_faces_detected": 422, "rate_limited": 429,
        "internal_error": 500, "service_unavailable": 503,
    }  # fmt: skip
    for code, status in expected.items():
        cls = errors.error_class(code)
        assert cls.code == code
        assert cls.http_status == status


def test_ids_sort_by_creation_time() -> None:
    first, second = new_id("task"), new_id("task")
    assert first.startswith("task_") and first[:17] <= second[:17]


def test_iso_timestamps_are_utc_with_z() -> None:
    ts = parse_iso("2026-04-21T11:30:00+02:00")
    assert iso(ts) == "2026-04-21T09:30:00Z"
    with pytest.raises(ValueError):
        parse_iso("yesterday")


def test_api_key_is_stored_only_as_its_hash() -> None:
    key = apikeys.generate_key()
    assert apikeys.looks_like_key(key.raw)
    assert key.raw not in key.key_hash and key.key_hash == apikeys.hash_key(key.raw)
    assert key.raw.startswith(key.prefix + "_")
    assert not apikeys.looks_like_key("fm_short_x")
    assert apikeys.generate_key().raw != key.raw


def test_json_log_line_carries_the_current_span_ids() -> None:
    context = SpanContext(trace_id=0x0AF7651916CD43DD8448EB211C80319C, span_id=0xB7AD6B7169203331, is_remote=False)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "traced", (), None)
    with trace.use_span(NonRecordingSpan(context)):
        doc = json.loads(JsonFormatter("demo").format(record))
    assert doc["trace_id"] == "0af7651916cd43dd8448eb211c80319c" and doc["span_id"] == "b7ad6b7169203331"
    assert "trace_id" not in json.loads(JsonFormatter("demo").format(record))  # no span: no ids


def test_json_log_line_carries_request_and_task_ids() -> None:
    formatter = JsonFormatter("demo")
    token_r, token_t = request_id_var.set("req_1"), task_id_var.set("task_9")
    try:
        record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
        record.frames = 3
        doc = json.loads(formatter.format(record))
    finally:
        request_id_var.reset(token_r)
        task_id_var.reset(token_t)
    assert doc["message"] == "hello world"
    assert doc["request_id"] == "req_1" and doc["task_id"] == "task_9"
    assert doc["service"] == "demo" and doc["level"] == "INFO" and doc["frames"] == 3

"""Readiness: a storm of ``/readyz`` probes costs one round of dependency checks a second, never a stale answer
once shutting down."""

from __future__ import annotations

import asyncio

import httpx
from starlette.applications import Starlette

from facemint_core.health import Readiness
from facemint_core.lifecycle import ops_routes


async def test_concurrent_and_repeated_probes_share_one_round_of_checks() -> None:
    readiness = Readiness()
    calls = 0

    async def database() -> None:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)  # a query's round trip

    readiness.add("database", database)
    transport = httpx.ASGITransport(app=Starlette(routes=ops_routes(readiness)))
    async with httpx.AsyncClient(transport=transport, base_url="http://ops") as client:
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
        assert [a.status_code for a in answers] == [200] * 50
        assert (await client.get("/readyz")).status_code == 200
        assert calls == 1
        await asyncio.sleep(1.1)
        assert (await client.get("/readyz")).status_code == 200
        assert calls == 2
        readiness.shutting_down = True
        gone = await client.get("/readyz")
    assert gone.status_code == 503 and gone.json()["checks"]["shutdown"] == "shutting down"
    assert (await readiness.evaluate()).ready is False and calls == 4  # evaluate() alone always runs the checks

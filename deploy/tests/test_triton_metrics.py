"""The Triton metrics the alerts and dashboards rely on are the ones a real Triton 2.51 exports.

The server is the ``triton_server`` fixture (the binary bundled in nvidia-pytriton, every model ``make models``
produced). Without a GPU it exports no ``nv_gpu_*`` metric, so only the per-model request metrics are checked here.
"""

from __future__ import annotations

import re
import urllib.request

import pytest

from deploy import validate as v
from facemint_local.triton import TritonServer

pytestmark = pytest.mark.integration


def test_request_metrics_used_and_listed_are_exported_per_model_from_load_on(triton_server: TritonServer) -> None:
    with urllib.request.urlopen(f"http://127.0.0.1:{triton_server.metrics_port}/metrics", timeout=10) as resp:
        text = resp.read().decode()
    exported = set(re.findall(r"^(nv_[a-z_]+)", text, re.MULTILINE))
    listed = {m for m in v.EXTERNAL_METRICS if m.startswith("nv_inference_")}
    used = {m for m in v.used_metrics() if m.startswith("nv_inference_")}
    assert used and used <= listed <= exported, sorted((used | listed) - exported)
    # FacemintComponentAbsent watches nv_inference_count: it must exist for every model once loaded, before traffic.
    models = set(re.findall(r'^nv_inference_count\{model="([^"]+)"', text, re.MULTILINE))
    assert models and models == set(re.findall(r'^nv_inference_request_success\{model="([^"]+)"', text, re.MULTILINE))

"""``facemint up`` starts from a checkout that only its owner may enter, as root too (issue #19).

The case is a clone inside ``mktemp -d`` (mode 0700) used by root. PostgreSQL refuses to run as root, so it runs as
the unprivileged ``facemint-pg``, who can enter neither the checkout (where the ``pgserver`` wheel's binaries and
libraries are, in ``.venv``) nor a data directory under a 0700 one such as pytest's ``/tmp/pytest-of-root``.

The test copies what the platform runs from a checkout into a fresh 0700 directory: the workspace's packages and the
``pgserver`` wheel (``pgserver/`` and ``pgserver.libs/``, laid out as in ``site-packages``). It puts the data
directory into a second 0700 directory and starts ``facemint up`` with the copies first on ``PYTHONPATH``. The
interpreter and the other wheels stay in this checkout's ``.venv``: they run as the calling user, for whom their
location does not matter. It passes when the gateway answers ``/readyz``, PostgreSQL runs as the expected user and
neither directory's mode has changed (a platform that opens them to others to get started fails); SIGTERM to the
supervisor's PID then stops every child.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import stat
import tempfile
from pathlib import Path

import httpx
import psutil
import pytest

from facemint_local.harness import pids_alive, start_platform
from facemint_local.pytest_plugin import repo_root
from facemint_local.servers import PG_SYSTEM_USER

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def _copy_checkout(root: Path, target: Path) -> list[Path]:
    """Copy the workspace packages and the pgserver wheel under ``target``; return the import paths of the copies."""
    for folder in ("libs", "services"):
        shutil.copytree(root / folder, target / folder, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.submodule_search_locations, "the pgserver wheel is not installed"
    package = Path(next(iter(spec.submodule_search_locations)))
    site = target / ".venv" / "site-packages"
    shutil.copytree(package, site / "pgserver", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(package.parent / "pgserver.libs", site / "pgserver.libs")
    return [site, *sorted(p for p in target.glob("*/*/src") if p.is_dir())]


def test_platform_starts_from_a_checkout_only_its_owner_may_enter() -> None:
    root = repo_root()
    with tempfile.TemporaryDirectory() as checkout_home, tempfile.TemporaryDirectory() as data_home:
        private = [Path(checkout_home), Path(data_home)]
        assert [stat.S_IMODE(p.stat().st_mode) for p in private] == [0o700, 0o700]
        paths = _copy_checkout(root, private[0] / "repo")
        running = start_platform(
            private[1] / "var",
            extra_env={
                "PYTHONPATH": os.pathsep.join(map(str, paths)),
                "FACEMINT_LOCAL_MODEL_DIR": str(root / "triton-models"),
            },
        )
        try:
            assert httpx.get(f"{running.gateway_url}/readyz", timeout=10).status_code == 200
            postgres = psutil.Process(running.state["servers"]["postgres"]["pid"])
            expected = PG_SYSTEM_USER if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
            assert postgres.username() == expected
            assert [stat.S_IMODE(p.stat().st_mode) for p in private] == [0o700, 0o700]
        finally:
            pids = running.all_pids()
            assert running.stop() == 0
        assert pids_alive(pids) == []

"""Free ports for the local platform's servers and services."""

from __future__ import annotations

from facemint_local.procs import free_port


def test_free_port_never_hands_out_the_same_port_twice() -> None:
    # A platform picks all its services' ports before starting them: a port drawn twice made one service fail to
    # bind (a few percent per platform start). 1,000 random draws from ~12,000 ports repeat ~40 times without it.
    ports = [free_port() for _ in range(1000)]
    assert len(set(ports)) == len(ports)

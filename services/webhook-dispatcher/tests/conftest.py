"""Fixtures of the dispatcher tests (defined in ``webhook_testkit``, which the tests also import helpers from)."""

from webhook_testkit import dispatcher_process, env, receiver, start_dispatcher

__all__ = ["dispatcher_process", "env", "receiver", "start_dispatcher"]

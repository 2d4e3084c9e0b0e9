"""The platform's JetStream streams and subjects, defined once for every producer and consumer."""

from __future__ import annotations

from nats.js import JetStreamContext

from facemint_core.jetstream import ensure_stream

JOBS_STREAM = "FACEMINT_JOBS"
JOBS_SUBJECT = "facemint.jobs.detect"
IMAGE_JOBS_SUBJECT = "facemint.jobs.image"
EVENTS_STREAM = "FACEMINT_EVENTS"
EVENTS_SUBJECTS = "facemint.events.>"
CANCEL_SUBJECT = "facemint.control.cancel"


def job_subject(task_type: str) -> str:
    """Subject of a detection job: images have their own, so that they are never fetched behind videos and GIFs."""
    return IMAGE_JOBS_SUBJECT if task_type == "image" else JOBS_SUBJECT


def event_subject(status: str) -> str:
    """Subject of a terminal task event, e.g. ``facemint.events.task.succeeded``."""
    return f"facemint.events.task.{status}"


async def ensure_jobs_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """The work-queue stream of detection jobs (each job consumed once, then removed), one subject per lane."""
    await ensure_stream(js, JOBS_STREAM, [JOBS_SUBJECT, IMAGE_JOBS_SUBJECT], work_queue=True, replicas=replicas)


async def ensure_events_stream(js: JetStreamContext, replicas: int = 1) -> None:
    """The stream of terminal task events, kept for seven days."""
    await ensure_stream(js, EVENTS_STREAM, [EVENTS_SUBJECTS], max_age_seconds=7 * 24 * 3600, replicas=replicas)

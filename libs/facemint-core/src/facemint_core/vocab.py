"""The platform's vocabulary, defined once: face attributes, task statuses and media kinds with their public names,
and the media limits of the API's media table.

The protos define the typed values (``facemint.common.v1.MediaKind``, ``facemint.orchestrator.v1.TaskStatus``);
this module maps them to the names the REST API and the database use (``"gif"`` for animated media, ``"queued"``
for ``TASK_STATUS_QUEUED``), so that no service keeps its own list.
"""

from __future__ import annotations

from facemint.common.v1 import common_pb2
from facemint.common.v1.common_pb2 import MediaKind
from facemint.orchestrator.v1 import orchestrator_pb2
from facemint.orchestrator.v1.orchestrator_pb2 import TaskStatus

#: Face attributes a task or a search may ask for, in the order results list them.
ATTRIBUTES: tuple[str, ...] = ("age", "gender", "emotion", "pose", "glasses", "mask", "quality", "landmarks")

#: Public task type (``"type"`` of a task) per media kind.
MEDIA_KIND_NAMES: dict[MediaKind.ValueType, str] = {
    common_pb2.MEDIA_KIND_VIDEO: "video",
    common_pb2.MEDIA_KIND_IMAGE: "image",
    common_pb2.MEDIA_KIND_ANIMATED: "gif",
}
MEDIA_KINDS: dict[str, MediaKind.ValueType] = {name: kind for kind, name in MEDIA_KIND_NAMES.items()}
#: The public task types, in the contract's order.
TASK_TYPES: tuple[str, ...] = tuple(MEDIA_KINDS)

#: Public (and stored) name per task status.
STATUS_NAMES: dict[TaskStatus.ValueType, str] = {
    orchestrator_pb2.TASK_STATUS_QUEUED: "queued",
    orchestrator_pb2.TASK_STATUS_RUNNING: "running",
    orchestrator_pb2.TASK_STATUS_SUCCEEDED: "succeeded",
    orchestrator_pb2.TASK_STATUS_FAILED: "failed",
    orchestrator_pb2.TASK_STATUS_CANCELLED: "cancelled",
}
STATUSES: dict[str, TaskStatus.ValueType] = {name: status for status, name in STATUS_NAMES.items()}
#: The public task statuses, in state-machine order.
TASK_STATUSES: tuple[str, ...] = tuple(STATUSES)
#: Statuses a task never leaves.
TERMINAL_STATUSES: frozenset[TaskStatus.ValueType] = frozenset(
    (
        orchestrator_pb2.TASK_STATUS_SUCCEEDED,
        orchestrator_pb2.TASK_STATUS_FAILED,
        orchestrator_pb2.TASK_STATUS_CANCELLED,
    )
)
#: Their names.
TERMINAL: frozenset[str] = frozenset(STATUS_NAMES[s] for s in TERMINAL_STATUSES)
#: Names of the statuses a task is still active in.
ACTIVE: tuple[str, ...] = tuple(name for name in TASK_STATUSES if name not in TERMINAL)

MIB = 1024 * 1024
#: The largest media file per task type (the defaults of the gateway's uploads and the media-decoder's fetch).
MAX_MEDIA_BYTES: dict[str, int] = {"video": 2048 * MIB, "image": 50 * MIB, "gif": 200 * MIB}
#: The longest side of an image or video frame, in pixels (8K UHD); no face can be larger.
MAX_SIDE = 7680
#: Pixels of the largest image or video frame (8K UHD, 7680 x 4320).
MAX_PIXELS = MAX_SIDE * 4320
#: The longest grace period of a webhook signing-secret rotation (deliveries also signed with the old secret).
MAX_WEBHOOK_SECRET_GRACE_SECONDS = 30 * 24 * 3600
#: The largest gRPC message any service sends or receives (frames travel in batches up to it).
MAX_MESSAGE_BYTES = 64 * MIB

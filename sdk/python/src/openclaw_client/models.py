"""The API's JSON as typed dataclasses.

Field names are the wire names (snake_case, as the tutorial shows them). Fields the server
adds later land in ``extra`` instead of breaking older clients; ``raw`` keeps the whole object.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, Generic, List, Mapping, Optional, Type, TypeVar

T = TypeVar("T")
M = TypeVar("M", bound="Model")

#: Statuses a task never leaves.
TERMINAL_STATUSES = ("completed", "failed", "cancelled")


@dataclass
class Model:
    """Base of every model: ``from_dict`` keeps unknown fields in ``extra``."""

    extra: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)
    raw: Dict[str, Any] = field(default_factory=dict, repr=False, compare=False, kw_only=True)

    #: Converters of nested fields, by name.
    _nested: ClassVar[Dict[str, Callable[[Any], Any]]] = {}

    @classmethod
    def from_dict(cls: Type[M], data: Mapping[str, Any]) -> M:
        names = {f.name for f in dataclasses.fields(cls) if f.name not in ("extra", "raw")}
        known: Dict[str, Any] = {}
        extra: Dict[str, Any] = {}
        for key, value in data.items():
            if key in names:
                convert = cls._nested.get(key)
                known[key] = convert(value) if convert and value is not None else value
            else:
                extra[key] = value
        for f in dataclasses.fields(cls):
            if f.name in names and f.name not in known and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                known[f.name] = None
        return cls(**known, extra=extra, raw=dict(data))

    def to_dict(self) -> Dict[str, Any]:
        """The object as the server sent it."""
        return dict(self.raw)


def _list_of(cls: Type[M]) -> Callable[[Any], List[M]]:
    return lambda items: [cls.from_dict(i) for i in items]


@dataclass
class Page(Generic[T]):
    """One page of a list: ``items``, ``total``, ``limit``, ``offset``."""

    items: List[T]
    total: int
    limit: int
    offset: int

    @classmethod
    def parse(cls, data: Mapping[str, Any], item: Callable[[Any], T]) -> "Page[T]":
        return cls(
            items=[item(i) for i in data.get("items", [])],
            total=int(data.get("total", 0)),
            limit=int(data.get("limit", 0)),
            offset=int(data.get("offset", 0)),
        )


@dataclass
class McpServerState(Model):
    name: str
    transport: Optional[str] = None
    status: Optional[str] = None
    tools: int = 0
    last_error: Optional[str] = None
    since: Optional[str] = None
    restarts: int = 0


@dataclass
class Replica(Model):
    id: str
    address: str = ""
    version: str = ""
    leader: bool = False
    last_seen: Optional[str] = None


@dataclass
class Status(Model):
    status: str
    version: str
    uptime_seconds: int
    mcp_servers: List[McpServerState] = field(default_factory=list)
    reconciler: Dict[str, Any] = field(default_factory=dict)
    tasks: Dict[str, Any] = field(default_factory=dict)
    replicas: List[Replica] = field(default_factory=list)

    _nested = {"mcp_servers": _list_of(McpServerState), "replicas": _list_of(Replica)}


@dataclass
class TaskCreated(Model):
    id: str
    status: str
    created_at: str


@dataclass
class Task(Model):
    id: str
    status: str
    prompt: str
    options: Dict[str, Any] = field(default_factory=dict)
    model: Optional[str] = None
    max_tokens: Optional[int] = None
    working_directory: Optional[str] = None
    timeout_seconds: Optional[int] = None
    created_by: Optional[str] = None
    created_at: Optional[str] = None
    started_at: Optional[str] = None
    completed_at: Optional[str] = None
    duration_ms: Optional[int] = None
    error: Optional[str] = None
    #: The Schedule that started the task, if one did.
    schedule: Optional[str] = None
    #: The slot it was started for (RFC 3339); None for a manual run.
    schedule_slot: Optional[str] = None


@dataclass
class TaskFile(Model):
    path: str
    change: str


@dataclass
class Usage(Model):
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass
class TaskResult(Model):
    id: str
    status: str
    output: str = ""
    files: List[TaskFile] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    error: Optional[str] = None
    duration_ms: Optional[int] = None

    _nested = {"files": _list_of(TaskFile), "usage": Usage.from_dict}


@dataclass
class TaskEvent:
    """One Server-Sent Event of a task: ``status`` (``data["status"]``) or ``output`` (``data["text"]``)."""

    event: str
    data: Any


@dataclass
class ResourceCondition(Model):
    ready: bool
    reason: str = ""
    message: str = ""


@dataclass
class Skill(Model):
    name: str
    version: Optional[str] = None
    resolved_version: Optional[str] = None
    description: Optional[str] = None
    enabled: bool = True
    source: Optional[Dict[str, Any]] = None
    installed: bool = False
    digest: Optional[str] = None
    installed_at: Optional[str] = None
    status: Optional[ResourceCondition] = None
    file: Optional[str] = None

    _nested = {"status": ResourceCondition.from_dict}


@dataclass
class ConfigWithEtag:
    """The Config spec (secrets only as references) and its ``ETag`` for ``if_match``."""

    config: Dict[str, Any]
    etag: Optional[str]


@dataclass
class Webhook(Model):
    id: str
    url: str
    events: List[str] = field(default_factory=list)
    enabled: bool = True
    description: Optional[str] = None
    created_at: Optional[str] = None
    updated_at: Optional[str] = None
    disabled_reason: Optional[str] = None
    status: Optional[ResourceCondition] = None
    file: Optional[str] = None

    _nested = {"status": ResourceCondition.from_dict}


@dataclass
class ScheduleRun(Model):
    """One run of a schedule: ``outcome`` is its task's status, or ``skipped`` / ``failed``."""

    trigger: str
    outcome: str
    fired_at: str
    slot: Optional[str] = None
    task_id: Optional[str] = None
    message: Optional[str] = None
    completed_at: Optional[str] = None
    error: Optional[str] = None


@dataclass
class ScheduleStatus(Model):
    suspended: bool = False
    condition: Optional[ResourceCondition] = None
    #: The next run times (RFC 3339), at most 5.
    next_runs: List[str] = field(default_factory=list)
    last_runs: List[ScheduleRun] = field(default_factory=list)
    skipped: int = 0
    consecutive_failures: int = 0
    backoff_until: Optional[str] = None
    since: Optional[str] = None

    _nested = {"condition": ResourceCondition.from_dict, "last_runs": _list_of(ScheduleRun)}


@dataclass
class Schedule(Model):
    name: str
    spec: Dict[str, Any] = field(default_factory=dict)
    status: Optional[ScheduleStatus] = None
    file: Optional[str] = None

    _nested = {"status": ScheduleStatus.from_dict}


@dataclass
class DeliveryAttempt(Model):
    attempt: int
    at: Optional[str] = None
    status_code: Optional[int] = None
    duration_ms: Optional[int] = None
    error: Optional[str] = None
    response_body: Optional[str] = None


@dataclass
class Delivery(Model):
    id: str
    event: str
    status: str
    event_id: Optional[str] = None
    attempt_count: int = 0
    created_at: Optional[str] = None
    completed_at: Optional[str] = None
    next_attempt_at: Optional[str] = None
    last_status: Optional[int] = None
    last_error: Optional[str] = None
    attempts: List[DeliveryAttempt] = field(default_factory=list)

    _nested = {"attempts": _list_of(DeliveryAttempt)}


@dataclass
class McpServer(McpServerState):
    description: Optional[str] = None
    enabled: bool = True
    resource: Optional[ResourceCondition] = None
    file: Optional[str] = None

    _nested = {"resource": ResourceCondition.from_dict}


@dataclass
class McpTools(Model):
    server: str
    status: Optional[str] = None
    items: List[Dict[str, Any]] = field(default_factory=list)
    total: int = 0


@dataclass
class ResourceStatus(Model):
    kind: str
    name: str
    file: Optional[str] = None
    line: Optional[int] = None
    ready: bool = False
    reason: str = ""
    message: str = ""
    applied_revision: Optional[str] = None
    last_transition_time: Optional[str] = None


@dataclass
class ReconcileReport(Model):
    revision: str = ""
    errors: int = 0
    duration_ms: int = 0
    changed_files: int = 0
    applied: List[Any] = field(default_factory=list)
    failed: List[Any] = field(default_factory=list)
    held: int = 0
    repaired: List[Any] = field(default_factory=list)


@dataclass
class DeliveryQueued(Model):
    """What ``webhooks.test`` and ``webhooks.redeliver`` answer."""

    status: str
    id: Optional[str] = None
    delivery_id: Optional[str] = None

"""openclaw_client: a client for the OpenClaw API as ``claw serve`` implements it.

>>> from openclaw_client import Client
>>> client = Client(base_url="http://localhost:3000", token=os.environ["OPENCLAW_TOKEN"])
>>> task = client.tasks.create(prompt="Analyze the error logs from today")
>>> result = client.tasks.wait_for_completion(task.id)
>>> print(result.output)

The distribution is ``openclaw-client`` and the import name ``openclaw_client``, so it never
collides with the unrelated ``openclaw-sdk`` / ``openclaw_sdk`` on PyPI.
"""

from ._client import (
    AsyncClient,
    AsyncConfigApi,
    AsyncMcpServers,
    AsyncResources,
    AsyncSkills,
    AsyncTasks,
    AsyncWebhooks,
    Client,
    ConfigApi,
    McpServers,
    Resources,
    Skills,
    Tasks,
    Webhooks,
)
from ._core import __version__
from ._errors import (
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    BadRequestError,
    ConflictError,
    InternalServerError,
    NotFoundError,
    OpenClawError,
    PermissionDeniedError,
    PreconditionFailedError,
    RateLimitError,
    UnprocessableEntityError,
)
from .models import (
    TERMINAL_STATUSES,
    ConfigWithEtag,
    Delivery,
    DeliveryAttempt,
    DeliveryQueued,
    McpServer,
    McpServerState,
    McpTools,
    Page,
    ReconcileReport,
    ResourceCondition,
    ResourceStatus,
    Skill,
    Status,
    Task,
    TaskCreated,
    TaskEvent,
    TaskFile,
    TaskResult,
    Usage,
    Webhook,
)
from .webhooks import verify_webhook

__all__ = [
    "__version__",
    "Client",
    "AsyncClient",
    "Tasks",
    "Skills",
    "ConfigApi",
    "Webhooks",
    "McpServers",
    "Resources",
    "AsyncTasks",
    "AsyncSkills",
    "AsyncConfigApi",
    "AsyncWebhooks",
    "AsyncMcpServers",
    "AsyncResources",
    "OpenClawError",
    "BadRequestError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "PreconditionFailedError",
    "UnprocessableEntityError",
    "RateLimitError",
    "InternalServerError",
    "APIConnectionError",
    "APITimeoutError",
    "TERMINAL_STATUSES",
    "ConfigWithEtag",
    "Delivery",
    "DeliveryAttempt",
    "DeliveryQueued",
    "McpServer",
    "McpServerState",
    "McpTools",
    "Page",
    "ReconcileReport",
    "ResourceCondition",
    "ResourceStatus",
    "Skill",
    "Status",
    "Task",
    "TaskCreated",
    "TaskEvent",
    "TaskFile",
    "TaskResult",
    "Usage",
    "Webhook",
    "verify_webhook",
]

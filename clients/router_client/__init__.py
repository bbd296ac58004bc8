"""Python client for the robot policy router (HTTP :8080 and gRPC :50051).

    from router_client import ActRequest, Feedback, RouterClient

    with RouterClient("http://localhost:8080", api_key="dev-robot-key") as router:
        reply = router.act(ActRequest("robot-1", "episode-1", state, task="reach-v3",
                                      deadline_ms=30))
        robot.apply(reply.action_array())
        router.feedback(Feedback("robot-1", "episode-1", success=True))

Errors are all `router_client.errors.RouterError` subclasses; see that module's tree.
"""

from .client import AsyncRouterClient, RouterClient, Transport
from .config import RetryPolicy, Timeouts
from .errors import (
    ConnectError,
    DeadlineExceeded,
    InvalidRequest,
    Overloaded,
    RequestRejected,
    RouterError,
    ServerError,
    TransportError,
    Unauthorized,
    UnknownTask,
)
from .messages import ActRequest, ActResponse, Feedback, Timing
from .policy import BasePolicy, RouterPolicy
from .session import ActSession, AsyncActSession

__all__ = [
    "ActRequest",
    "ActResponse",
    "ActSession",
    "AsyncActSession",
    "AsyncRouterClient",
    "BasePolicy",
    "ConnectError",
    "DeadlineExceeded",
    "Feedback",
    "InvalidRequest",
    "Overloaded",
    "RequestRejected",
    "RetryPolicy",
    "RouterClient",
    "RouterError",
    "RouterPolicy",
    "ServerError",
    "Timeouts",
    "Timing",
    "Transport",
    "TransportError",
    "Unauthorized",
    "UnknownTask",
]

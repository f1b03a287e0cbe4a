"""The Python client of Linqra on Ray: ``Linqra`` (blocking) and ``AsyncLinqra`` (asyncio).

    from linqra_client import Linqra
    client = Linqra("http://127.0.0.1:8000", api_key="lq_…")
    for workflow in client.workflows.list():
        print(workflow.id, workflow.name)

Responses are the pydantic models of :mod:`linqra_client.models` (generated from the API's
schema); errors are the classes of :mod:`linqra_client.errors`; chat streams yield the events of
:mod:`linqra_client.chat_events`. The reference is ``docs/python.md``.
"""

from linqra_client import chat_events, errors, models
from linqra_client._async.chat import AsyncChatSocket, AsyncChatStream
from linqra_client._async.client import AsyncLinqra
from linqra_client._async.pagination import AsyncPager, Page
from linqra_client._base import RetryPolicy
from linqra_client._sync.chat import ChatSocket, ChatStream
from linqra_client._sync.client import Linqra
from linqra_client._sync.pagination import Pager
from linqra_client.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    BudgetExceeded,
    Conflict,
    Forbidden,
    InternalError,
    InvalidRequest,
    InvalidResponse,
    LinqraError,
    NotFound,
    PayloadTooLarge,
    ProviderError,
    RateLimited,
    ServerUnreachable,
    StreamError,
    Unauthenticated,
    Unavailable,
)
from linqra_client.progress import UploadProgress

__version__ = "0.1.0"

__all__ = [
    "APIConnectionError",
    "APIError",
    "APITimeoutError",
    "AsyncChatSocket",
    "AsyncChatStream",
    "AsyncLinqra",
    "AsyncPager",
    "BudgetExceeded",
    "ChatSocket",
    "ChatStream",
    "Conflict",
    "Forbidden",
    "InternalError",
    "InvalidRequest",
    "InvalidResponse",
    "Linqra",
    "LinqraError",
    "NotFound",
    "Page",
    "Pager",
    "PayloadTooLarge",
    "ProviderError",
    "RateLimited",
    "RetryPolicy",
    "ServerUnreachable",
    "StreamError",
    "Unauthenticated",
    "Unavailable",
    "UploadProgress",
    "chat_events",
    "errors",
    "models",
]

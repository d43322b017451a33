"""The store behind the Responses API's `store` and `previous_response_id`.

Keyword-only async functions over `compat.models.StoredResponse`; every
lookup is scoped to the caller that stored the response (another key gets a
404, as if it did not exist).
"""

from __future__ import annotations

from typing import Any

from compat.models import StoredResponse
from gateway.errors import NotFoundError
from keys.policy import Caller


def _not_found(response_id: str, param: str | None) -> NotFoundError:
    return NotFoundError(f"No stored response with id '{response_id}'.", param=param)


async def stored_response_create(
    *, caller: Caller, response_id: str, model: str, messages: list[dict[str, Any]], body: Any
) -> None:
    """Keep a finished answer and the conversation that led to it."""
    await StoredResponse.objects.acreate(
        id=response_id,
        owner=caller.id,
        api_key=caller.api_key,
        model=model,
        messages=messages,
        body=body,
    )


async def stored_response_get(
    *, caller: Caller, response_id: str, param: str | None = None
) -> StoredResponse:
    """The caller's stored response; `NotFoundError` (naming `param`) if there is none."""
    try:
        return await StoredResponse.objects.aget(id=response_id, owner=caller.id)
    except StoredResponse.DoesNotExist:
        raise _not_found(response_id, param) from None


async def stored_response_delete(*, caller: Caller, response_id: str) -> None:
    """Forget one of the caller's stored responses; `NotFoundError` if there is none."""
    deleted, _ = await StoredResponse.objects.filter(id=response_id, owner=caller.id).adelete()
    if not deleted:
        raise _not_found(response_id, None)

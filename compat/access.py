"""Key checks the compatible surfaces make once they know more than the route.

Authentication, the endpoint-group allow-list, rate limits and usage records
are global (DRF settings keyed off each view's `endpoint_group`); what is
left here needs the request body: the model a call names, and the rule for
Ollama's model-management calls.
"""

from __future__ import annotations

from rest_framework.request import Request

from apis.errors import PermissionDeniedError
from keys.services import api_key_authorize

# Endpoint group of Ollama's model-management calls (pull, push, create,
# delete, copy). A key has it only when its allow-list names it explicitly:
# an empty allow-list means "every group except this one".
OLLAMA_ADMIN_GROUP = "ollama_admin"


def model_authorize(request: Request, *, endpoint_group: str, model: str) -> None:
    """Refuse (403 `model_not_allowed`) when the request's key may not use `model`.

    The global permission already checked the endpoint group; the model is
    only known once the body is read.
    """
    api_key_authorize(api_key=request.auth, endpoint_group=endpoint_group, model=model)


def ollama_admin_authorize(request: Request) -> None:
    """Refuse (403 `endpoint_not_allowed`) unless the key lists `ollama_admin`.

    Checked here, from the key's public `allowed_endpoints`, whatever the
    global allow-list check decides: pulling or deleting models changes the
    backend for everyone, so it is never implied by an empty allow-list, and
    never granted without a key at all.
    """
    api_key = request.auth
    allowed = getattr(api_key, "allowed_endpoints", None) or ()
    if api_key is None or OLLAMA_ADMIN_GROUP not in allowed:
        raise PermissionDeniedError(
            "This API key may not manage models: an administrator must add "
            f"'{OLLAMA_ADMIN_GROUP}' to its allowed endpoints.",
            code="endpoint_not_allowed",
        )

"""Key checks the compatible surfaces make once they know more than the route.

Authentication, the endpoint-group allow-list, rate limits and usage records
are global (DRF settings keyed off each view's `endpoint_group`); what is
left here needs the request body: the model a call names.
"""

from __future__ import annotations

from rest_framework.request import Request

from gateway.metering import UsageMeter, meter_for
from keys.services import api_key_authorize

# Endpoint group of Ollama's model-management calls (pull, push, create,
# delete, copy). It is one of keys.models.EXPLICIT_ONLY_GROUPS: a key has it
# only when its allow-list names it, and the global permission checks that.
OLLAMA_ADMIN_GROUP = "ollama_admin"


def model_authorize(request: Request, *, endpoint_group: str, model: str) -> None:
    """Refuse (403 `model_not_allowed`) when the request's key may not use `model`.

    The global permission already checked the endpoint group; the model is
    only known once the body is read.
    """
    api_key_authorize(api_key=request.auth, endpoint_group=endpoint_group, model=model)


def metered_model(request: Request, *, endpoint_group: str, model: str) -> UsageMeter:
    """Name `model` on the request's usage meter, then authorize it for the key.

    The meter carries the model first so that a refused call's usage record
    still says which model was asked for.
    """
    meter = meter_for(request)
    meter.model = model
    model_authorize(request, endpoint_group=endpoint_group, model=model)
    return meter

"""OpenAPI documentation of the OpenAI-compatible API (`/openai/v1/`, mirrored at `/ollama/v1/`).

Each name is an `extend_schema` decorator for one action of `compat.openai_views`; request
rules and examples come with the serializers (`compat.openai_serializers`), and streamed
answers are `text/event-stream` events that carry their JSON schema.
"""

from __future__ import annotations

import functools

from drf_spectacular.utils import OpenApiResponse

from compat.openai_serializers import (
    ChatCompletionChunkSerializer,
    ChatCompletionInputSerializer,
    ChatCompletionSerializer,
    CompletionChunkSerializer,
    CompletionInputSerializer,
    CompletionSerializer,
    EmbeddingListSerializer,
    OpenAIEmbeddingInputSerializer,
    OpenAIModelListSerializer,
    OpenAIModelSerializer,
)
from gateway.errors import BadRequestError
from gateway.schema import (
    INFERENCE_ERRORS,
    LIST_ERRORS,
    MODEL_ERRORS,
    MODEL_ID,
    answer_or_stream,
    errors,
    operation,
    sse_event_serializer,
)

# One action's docs: `operation(...)` under the `openai` tag.
openai_operation = functools.partial(operation, tags=["openai"])

STREAM_NOTE = (
    "With `stream: true` the answer is `text/event-stream`: one `data: <chunk>` event per "
    "piece as the backend produces it, ending `data: [DONE]`; with "
    "`stream_options.include_usage` a last chunk with empty `choices` carries `usage`. "
    'A failure after the first event ends the stream with `data: {"error": {...}}` and no '
    "`[DONE]` (the openai SDK raises it as `APIError`)."
)
UNSUPPORTED = errors(
    *INFERENCE_ERRORS,
    unsupported=BadRequestError("Only n=1 is supported: the backend makes one choice.", param="n"),
    malformed_json=BadRequestError("Malformed JSON body: JSON parse error"),
)


def _events(chunk_id: str, kind: str, *events: str) -> str:
    """An SSE stream of `kind` chunks (the JSON after their common head), then `[DONE]`."""
    head = f'"id":"{chunk_id}","object":"{kind}","created":1768473000,"model":"qwen2.5:14b",'
    head += '"system_fingerprint":null,'
    return "".join(f"data: {{{head}{event}}}\n\n" for event in events) + "data: [DONE]\n\n"


models_list = openai_operation(
    summary="List models (OpenAI)",
    description=(
        "The backend's models as OpenAI's `list` object (what `client.models.list()` reads)."
    ),
    answer=OpenApiResponse(OpenAIModelListSerializer, "The models."),
    errors=errors(*LIST_ERRORS),
)

models_retrieve = openai_operation(
    summary="Retrieve a model (OpenAI)",
    description="One model as OpenAI's `model` object; `404 model_not_found` if there is none.",
    parameters=[MODEL_ID],
    answer=OpenApiResponse(OpenAIModelSerializer, "The model."),
    errors=errors(*MODEL_ERRORS),
)

chat_create = openai_operation(
    summary="Create a chat completion (OpenAI)",
    description=(
        "OpenAI's chat completions over the local backend. Passed through: `temperature`, "
        "`top_p`, `max_tokens`/`max_completion_tokens`, `stop`, `seed`, penalties, "
        "`response_format` (`json_object`, `json_schema`), `tools`/`tool_choice`, image parts "
        "(base64 data URLs), `reasoning_effort`. Served: `logprobs`/`top_logprobs` (each "
        "token's log probability, streamed with its chunk) and `n` (n generations, each "
        "counted against the key's limits like a request, interleaved by `index` when "
        "streamed; with `seed`, choice i uses seed + i; `usage` sums them). Refused with "
        "`400` naming `param`: `n` over GATEWAY_MAX_CHOICES, `top_logprobs` without "
        "`logprobs: true`, and what the backend cannot do (`logit_bias`, audio).\n\n"
        "### Streaming\n\n" + STREAM_NOTE
    ),
    request=ChatCompletionInputSerializer,
    answer=answer_or_stream(
        "A `chat.completion`, or (`stream: true`) its `chat.completion.chunk` events.",
        ChatCompletionSerializer,
        sse_event_serializer(ChatCompletionChunkSerializer),
        _events(
            "chatcmpl-8f2c1e",
            "chat.completion.chunk",
            '"choices":[{"index":0,"delta":{"role":"assistant","content":""},'
            '"logprobs":null,"finish_reason":null}]',
            '"choices":[{"index":0,"delta":{"content":"Bonjour"},'
            '"logprobs":null,"finish_reason":null}]',
            '"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]',
        ),
    ),
    errors=UNSUPPORTED,
)

completions_create = openai_operation(
    summary="Create a (legacy) text completion (OpenAI)",
    description=(
        "OpenAI's legacy completions: one prompt string (or a list holding one), optional "
        "`suffix`. Served: `n` (as for chat) and `logprobs` (0 to 5, in the legacy shape). "
        "Refused with `400`: batches, token arrays, `n` over GATEWAY_MAX_CHOICES, "
        "`best_of` > 1, `echo`.\n\n### Streaming\n\n" + STREAM_NOTE
    ),
    request=CompletionInputSerializer,
    answer=answer_or_stream(
        "A `text_completion`, or (`stream: true`) its events.",
        CompletionSerializer,
        sse_event_serializer(CompletionChunkSerializer),
        _events(
            "cmpl-3b9a7d",
            "text_completion",
            '"choices":[{"index":0,"text":"\\n    if n < 2:","logprobs":null,'
            '"finish_reason":null}]',
            '"choices":[{"index":0,"text":"","logprobs":null,"finish_reason":"stop"}]',
        ),
    ),
    errors=UNSUPPORTED,
)

embeddings_create = openai_operation(
    summary="Create embeddings (OpenAI)",
    description=(
        "One vector per input from one backend call. `encoding_format: base64` returns each "
        "vector as base64 of little-endian float32 (what the openai SDK asks for by default). "
        "Token arrays are refused with `400` (LangChain: `check_embedding_ctx_length=False`)."
    ),
    request=OpenAIEmbeddingInputSerializer,
    answer=OpenApiResponse(EmbeddingListSerializer, "The vectors, in input order."),
    errors=UNSUPPORTED,
)

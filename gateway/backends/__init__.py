"""Inference backends: the small interface every kind of backend implements.

Today there is one kind (`OllamaBackend`). Later kinds (several Ollama hosts
with routing and failover, an embedded llama.cpp model) implement the same
`InferenceBackend` protocol, so viewsets and consumers never change.
"""

from gateway.backends.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    InferenceBackend,
    ModelDescription,
    ModelInfo,
    ModelManager,
    ProgressUpdate,
    RunningModel,
    Timings,
    TokenLogprob,
    ToolCall,
    normalize_model_name,
)

__all__ = [
    "ChatChunk",
    "ChatRequest",
    "ChatResult",
    "EmbedResult",
    "GenerateChunk",
    "GenerateRequest",
    "GenerateResult",
    "GenerationParams",
    "InferenceBackend",
    "ModelDescription",
    "ModelInfo",
    "ModelManager",
    "ProgressUpdate",
    "RunningModel",
    "Timings",
    "TokenLogprob",
    "ToolCall",
    "normalize_model_name",
]

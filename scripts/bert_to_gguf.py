"""Convert a sentence-transformers BERT model (safetensors + tokenizer.json) to GGUF.

llama.cpp's own converter imports torch and transformers (gigabytes); this one
needs only numpy, safetensors and the `gguf` package. It writes what
llama.cpp's BERT loader reads: the `bert` architecture with the pooling of the
model's `1_Pooling/config.json`, the WordPiece vocabulary in llama.cpp's
"phantom space" form, and the weights under GGUF's tensor names (matrices as
F16, norms, biases and the added embeddings as F32, as llama.cpp's converter
does by default).

    python scripts/bert_to_gguf.py MODEL_DIR OUT.gguf [--name all-minilm]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import gguf
import numpy as np
from safetensors import safe_open

# Matrices llama.cpp's BERT graph needs in F32 (it adds them to F32 activations).
_F32_ONLY = {"position_embd.weight", "token_types.weight"}

# Tensors llama.cpp's BERT graph does not use.
_SKIPPED = {"embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias"}


def _pooling_type(model_dir: Path) -> gguf.PoolingType:
    modules = json.loads((model_dir / "modules.json").read_text())
    path = next(m["path"] for m in modules if m["type"].endswith("Pooling"))
    pooling = json.loads((model_dir / path / "config.json").read_text())
    if pooling.get("pooling_mode_mean_tokens"):
        return gguf.PoolingType.MEAN
    if pooling.get("pooling_mode_cls_token"):
        return gguf.PoolingType.CLS
    raise SystemExit(f"unsupported pooling in {model_dir / path}: only mean and CLS")


def _vocab(model_dir: Path) -> tuple[list[str], list[int]]:
    """Tokens in id order, in llama.cpp's WPM form: `##x` -> `x`, `x` -> `▁x`."""
    tokenizer = json.loads((model_dir / "tokenizer.json").read_text())
    by_id = {index: token for token, index in tokenizer["model"]["vocab"].items()}
    special = {t["content"] for t in tokenizer.get("added_tokens", []) if t.get("special")}
    tokens, types = [], []
    for index in range(len(by_id)):
        token = by_id[index]
        if token in special:
            tokens.append(token)
            types.append(gguf.TokenType.CONTROL)
        else:
            tokens.append(token[2:] if token.startswith("##") else "\u2581" + token)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def convert(model_dir: Path, out: Path, *, name: str) -> None:
    config = json.loads((model_dir / "config.json").read_text())
    if config.get("model_type") != "bert":
        raise SystemExit(f"{model_dir}: model_type {config.get('model_type')!r}, expected 'bert'")
    blocks = config["num_hidden_layers"]
    arch = gguf.MODEL_ARCH.BERT
    writer = gguf.GGUFWriter(out, gguf.MODEL_ARCH_NAMES[arch])
    writer.add_name(name)
    writer.add_block_count(blocks)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)
    writer.add_pooling_type(_pooling_type(model_dir))
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)

    tokens, types = _vocab(model_dir)
    writer.add_token_type_count(config.get("type_vocab_size", 1))
    writer.add_tokenizer_model("bert")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    # No `cls`: GGUF has no key for it (llama.cpp takes BERT's [CLS] as BOS).
    special = ("bos", "eos", "unk", "sep", "pad", "mask")
    vocab = gguf.SpecialVocab(model_dir, n_vocab=len(tokens), special_token_types=special)
    vocab.add_to_gguf(writer, quiet=True)

    names = gguf.get_tensor_name_map(arch, blocks)
    with safe_open(model_dir / "model.safetensors", framework="np") as weights:
        for key in weights.keys():
            source = key.removeprefix("bert.")
            if source in _SKIPPED or source.startswith("cls."):
                continue
            target = names.get_name(source, try_suffixes=(".weight", ".bias"))
            if target is None:
                raise SystemExit(f"no GGUF name for tensor {key!r}")
            data = weights.get_tensor(key).astype(np.float32)
            # llama.cpp adds position and token-type embeddings in F32 only.
            if data.ndim == 2 and target not in _F32_ONLY:
                data = data.astype(np.float16)
            writer.add_tensor(target, data)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--name", default="all-minilm")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    partial = args.out.with_suffix(args.out.suffix + ".partial")
    convert(args.model_dir, partial, name=args.name)
    partial.replace(args.out)  # never leave a half-written model under the real name
    return 0


if __name__ == "__main__":
    sys.exit(main())

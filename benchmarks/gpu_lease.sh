#!/usr/bin/env bash
# One device lease's GPU checks, prepared here (network to PyPI, the data in ../shared) and run on a
# device machine that has its own CUDA torch but no network, no data and none of our other packages.
#
#   here:   bash benchmarks/gpu_lease.sh prepare
#           wheels of this venv's versions for the device's Python 3.12 into .whl/, and the benchmark's
#           training features (tokenised here) into .gpu/features/; both are kept out of git through
#           .git/info/exclude, and the device tool carries them (carry: [".whl", ".gpu"]).
#   there:  bash benchmarks/gpu_lease.sh run
#           installs the wheels into /tmp/site, then gpu_overhead.py --large (~40 s), every bench_gpu.py
#           pair with cuDNN attention off on both sides (BUDGET_S, default 250 s), xstilts' side alone with
#           runtime.fuse_qkv on XNLI and PAN-X for both models (FUSED_BUDGET_S, default 80 s), and xstilts'
#           side alone compiled (runtime.compile) on XNLI for both models (COMPILE_BUDGET_S, default 120 s),
#           the last two to set against xstilts' default rows of the same call; results under $OUT.
#
# Why this shape: the 2026-12-04 lease (benchmarks/RESULTS.md, twenty-sixth session) had 15 minutes of
# device time in all, a minute of it per machine start; this runs in about 8 minutes in one call (its
# budgets sum to 450 s, plus the wheels' installation and gpu_overhead.py).
set -euo pipefail
cd "$(dirname "$0")/.."

WHEELS=(transformers huggingface_hub accelerate pydantic pydantic_core annotated_types typing_inspection
        typing_extensions httpx2 httpcore2 truststore idna anyio click kernels tomlkit)

prepare() {
    local exclude
    exclude="$(git rev-parse --git-dir)/info/exclude"
    mkdir -p "$(dirname "$exclude")" .whl .gpu
    for path in /.whl/ /.gpu/; do grep -qx "$path" "$exclude" 2>/dev/null || echo "$path" >> "$exclude"; done
    local pins=()
    for name in "${WHEELS[@]}"; do
        pins+=("$name==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('$name'))")")
    done
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
        -d .whl "${pins[@]}"
    .venv/bin/python -m pip wheel -q --no-deps -w .whl \
        "seqeval==$(.venv/bin/python -c "import importlib.metadata as m; print(m.version('seqeval'))")"
    .venv/bin/python benchmarks/bench_gpu.py --features-dir .gpu/features --prepare-only
    du -sh .whl .gpu
}

run() {
    local out="${OUT:-/tmp/gpu-lease}" budget="${BUDGET_S:-250}" compile_budget="${COMPILE_BUDGET_S:-120}"
    local fused_budget="${FUSED_BUDGET_S:-80}"
    mkdir -p "$out"
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH="/tmp/site:$PWD/src" PYTHONUNBUFFERED=1
    nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,memory.total --format=csv
    timeout 120 python3 benchmarks/gpu_overhead.py --large --json "$out/gpu_overhead.json" || echo "gpu_overhead: exit $?"
    python3 benchmarks/bench_gpu.py --features-dir .gpu/features --cudnn-attention off --budget-s "$budget" \
        --json "$out/bench_gpu.json"
    # one stacked query/key/value product: fewer operators a step, where dispatch is what a step waits on
    python3 benchmarks/bench_gpu.py --features-dir .gpu/features --cudnn-attention off --sides xstilts \
        --runtime '{"fuse_qkv": true}' --cases phase3-xnli,phase3-panx --budget-s "$fused_budget" \
        --json "$out/bench_gpu_fused.json"
    # the Trainer's torch_compile recompiles for new padded shapes (seen on the CPU smoke test: 16 s a
    # step), so only xstilts' side is compiled here: compiled against eager, not against the Trainer
    python3 benchmarks/bench_gpu.py --features-dir .gpu/features --cudnn-attention off --compile --sides xstilts \
        --models e5-small,xlmr-large-size --cases phase3-xnli --budget-s "$compile_budget" \
        --json "$out/bench_gpu_compile.json"
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    *) echo "usage: bash benchmarks/gpu_lease.sh prepare|run" >&2; exit 2 ;;
esac

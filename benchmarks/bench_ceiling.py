"""How close this CPU's matrix products come to its multiply-add units, and an experiment to its arithmetic.

Usage: ``python benchmarks/bench_ceiling.py [--store OUTPUT_DIR] [--threads N] [--seconds 2] [--json F]``

Why: ``bench_peak.py`` counts a training step against the best *measured* matrix product, which says
how much of a step is anything but products; it cannot say whether the products themselves could go
faster. This benchmark measures the silicon's ceiling directly and, given a finished experiment,
the least time its arithmetic could take, so a wall-time goal can be checked against what the
machine can do at all before anyone tries to make a run faster.

1. **Multiply-add ceiling**: a loop of twelve independent chains of fp32 vector multiply-adds,
   compiled for this CPU (``cc -O2 -march=native``: AVX-512 where the CPU reports it, else AVX2 with
   FMA, ...), on one thread and on ``--threads`` at once; 2 FLOPs per lane per multiply-add.
2. **Products**: fp32 ``torch.matmul`` (and oneDNN's inner product and OpenBLAS's sgemm where they exist) on one
   thread, at a large square and the default model's shapes (``bench_peak.SHAPES``); the best
   against the ceiling.
3. **Memory**: a compiled STREAM-style triad (``c = a + 0.5·b``, 12 bytes a float counted) on one
   thread over working sets of 768 KiB, 12 MiB and 768 MiB (within a 1-2 MiB L2, within a 16-32 MiB
   L3, far beyond both). Why: on a VM the products ran up to 15 % slower after a slow quickstart than
   four hours before, while the multiply-add ceiling did not move (benchmarks/RESULTS.md,
   forty-fourth session); products also need caches and memory, which a VM shares with its host's
   other tenants, so this row beside a slow experiment says whether they moved.
4. **An experiment's floor** (``--store``): every finished run's real training and evaluation tokens
   (results.sqlite) times the FLOPs of the encoder's linear layers per token -- 6 × parameters for a
   training token, 2 × for an evaluated one; for sentence-level heads (classification, multiple
   choice; a multi-task setting where any of its tasks has one) the last layer's key and value
   projections only, as the first-token shortcut computes -- on ``--threads`` cores at the best
   product rate. Attention, heads, embeddings and element-wise work
   are left out, so it is a lower bound: the experiment's wall time (first start to last finish)
   against it is the share of the machine's product rate the whole experiment achieved.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_peak import SHAPES, matmul_gflops  # noqa: E402

from xstilts.models import linear, openblas  # noqa: E402

CHAINS = 12  # independent accumulators in SOURCE: enough to cover a multiply-add's latency on two pipes
SOURCE = r"""
#if defined(__AVX512F__)
#define BYTES 64
#else
#define BYTES 32
#endif
typedef float vec __attribute__((vector_size(BYTES)));
int lanes(void) { return BYTES / 4; }
/* seconds for `iters` rounds of twelve multiply-adds, one per chain, each chain in a register of its
   own; the start values come from memory so the compiler cannot merge the chains, and their sum is
   stored so it cannot drop them */
#define CHAIN(x) x = x * m + c;
double run(long iters, const float *start, float *sink) {
    vec m, c, a0, a1, a2, a3, a4, a5, a6, a7, a8, a9, a10, a11;
    for (int i = 0; i < BYTES / 4; i++) {
        m[i] = start[0]; c[i] = start[1];
        a0[i] = start[2]; a1[i] = start[3]; a2[i] = start[4]; a3[i] = start[5]; a4[i] = start[6];
        a5[i] = start[7]; a6[i] = start[8]; a7[i] = start[9]; a8[i] = start[10]; a9[i] = start[11];
        a10[i] = start[12]; a11[i] = start[13];
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long n = 0; n < iters; n++) {
        CHAIN(a0) CHAIN(a1) CHAIN(a2) CHAIN(a3) CHAIN(a4) CHAIN(a5)
        CHAIN(a6) CHAIN(a7) CHAIN(a8) CHAIN(a9) CHAIN(a10) CHAIN(a11)
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    vec s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
    float total = 0;
    for (int i = 0; i < BYTES / 4; i++) total += s[i];
    *sink = total;
    return (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
}
/* seconds for one pass of c = a + 0.5 b over n floats, a vector at a time (any alignment) */
typedef float uvec __attribute__((vector_size(BYTES), aligned(4)));
double triad(long n, const float *a, const float *b, float *c) {
    struct timespec t0, t1;
    const long w = BYTES / 4, whole = n / w * w;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (long i = 0; i < whole; i += w)
        *(uvec *)(c + i) = *(const uvec *)(a + i) + 0.5f * *(const uvec *)(b + i);
    for (long i = whole; i < n; i++) c[i] = a[i] + 0.5f * b[i];
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (t1.tv_sec - t0.tv_sec) + 1e-9 * (t1.tv_nsec - t0.tv_nsec);
}
"""


def build(folder: Path) -> ctypes.CDLL:
    """The multiply-add loop compiled for this CPU (contraction to fused multiply-adds is GCC's and
    Clang's default where the CPU has them)."""
    compiler = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        sys.exit("bench_ceiling: no C compiler (cc, gcc or clang) on PATH")
    src, lib = folder / "fma.c", folder / "fma.so"
    src.write_text("#include <time.h>\n" + SOURCE)
    subprocess.run([compiler, "-O2", "-march=native", "-ffp-contract=fast", "-shared", "-fPIC",
                    str(src), "-o", str(lib)], check=True)
    dll = ctypes.CDLL(str(lib))
    dll.run.restype = ctypes.c_double
    dll.run.argtypes = [ctypes.c_long, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    dll.triad.restype = ctypes.c_double
    dll.triad.argtypes = [ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p]
    return dll


START = (ctypes.c_float * (2 + CHAINS))(0.9999, 1e-4, *[1.0 + k for k in range(CHAINS)])  # m, c, the chains


def loop_length(dll: ctypes.CDLL, seconds: float) -> int:
    """Rounds of the loop that take about ``seconds`` on one thread."""
    iters = 1_000_000
    while dll.run(iters, START, ctypes.byref(ctypes.c_float())) < seconds / 4:
        iters *= 2
    return 4 * iters


def fma_gflops(dll: ctypes.CDLL, threads: int, iters: int) -> list[float]:
    """GFLOP/s of each of ``threads`` copies of ``iters`` rounds run at once (ctypes lets go of the GIL)."""
    per_iter = 2 * dll.lanes() * CHAINS
    out = [0.0] * threads

    def one(i: int) -> None:
        out[i] = per_iter * iters / dll.run(iters, START, ctypes.byref(ctypes.c_float())) / 1e9

    pool = [threading.Thread(target=one, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return out


def product_rates(seconds: float) -> dict[str, float]:
    """One-thread fp32 GFLOP/s of every shape, through torch.matmul, and oneDNN and OpenBLAS where
    they exist (models/linear.py, models/openblas.py)."""
    rates = {}
    for name, shape in SHAPES.items():
        rates[f"torch {name}"] = matmul_gflops(*shape, torch.float32, seconds)
        if linear.available():
            rates[f"oneDNN {name}"] = matmul_gflops(*shape, torch.float32, seconds, library="onednn")
        if openblas.available():
            rates[f"OpenBLAS {name}"] = matmul_gflops(*shape, torch.float32, seconds, library="openblas")
    return rates


WORKING_SETS = {"768 KiB": 768 << 10, "12 MiB": 12 << 20, "768 MiB": 768 << 20}  # the three arrays together


def triad_gbs(dll: ctypes.CDLL, total_bytes: int, seconds: float) -> float:
    """Best one-thread GB/s of the compiled ``c = a + 0.5·b`` over float32 arrays of ``total_bytes``
    together, passes repeated for about ``seconds`` (12 bytes a float: two read, one written, as
    STREAM counts)."""
    n = total_bytes // 12
    a, b, c = torch.rand(n), torch.rand(n), torch.zeros(n)
    pointers = (a.data_ptr(), b.data_ptr(), c.data_ptr())
    dll.triad(n, *pointers)  # warm-up: every page touched
    best, started = 0.0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        best = max(best, 12 * n / dll.triad(n, *pointers) / 1e9)
    return best


SENTENCE_HEADS = ("classification", "multiple_choice")  # heads reading the first token alone


def experiment_flops(store_dir: Path) -> dict[str, Any]:
    """The linear-layer FLOPs every finished run of the store at ``store_dir`` computed at least, and
    the experiment's wall time."""
    from transformers import AutoConfig

    from xstilts.config import setting_tasks
    from xstilts.models.loading import resolve_model_path
    from xstilts.store import Store, run_extra
    from xstilts.tasks import get_task, task_names

    with Store(store_dir / "results.sqlite", readonly=True) as store:
        config = store.get_meta("config") or {}
        runs = [r for r in store.runs() if r["status"] == "done"]
    if not runs:
        sys.exit(f"bench_ceiling: {store_dir / 'results.sqlite'}: no finished runs")
    model = AutoConfig.from_pretrained(resolve_model_path(config.get("model", "default")))  # shapes, no weights
    h, i, n_layers = model.hidden_size, model.intermediate_size, model.num_hidden_layers
    per_layer = 4 * h * h + 2 * h * i
    full, shortcut = n_layers * per_layer, (n_layers - 1) * per_layer + 2 * h * h
    flops, train_tokens, eval_tokens = 0.0, 0, 0
    for r in runs:
        tasks = [r["target"]] if r["phase"] == "target" else list(setting_tasks(r["intermediate"].split("+")))
        # the run's tokens are not split by task: the smaller count wherever any task (or one this
        # registry does not know) may have read the first token alone, so the floor stays a floor
        sentence = any(t not in task_names() or get_task(t).head in SENTENCE_HEADS for t in tasks)
        params = shortcut if sentence else full
        trained = r["train_tokens"] or 0
        evaluated = int(run_extra(r).get("eval_tokens") or 0)
        flops += 6 * params * trained + 2 * params * evaluated
        train_tokens += trained
        eval_tokens += evaluated
    wall = max(r["finished_at"] for r in runs) - min(r["started_at"] for r in runs)
    return {"runs": len(runs), "train_tokens": train_tokens, "eval_tokens": eval_tokens,
            "tflop": flops / 1e12, "wall_s": wall}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--store", type=Path, default=None, help="an experiment's output directory (results.sqlite)")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="cores for the all-core figures")
    ap.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        dll = build(Path(tmp))
        iters = loop_length(dll, args.seconds)
        one = max(fma_gflops(dll, 1, iters)[0] for _ in range(3))
        every = fma_gflops(dll, args.threads, iters)
        memory = {name: triad_gbs(dll, size, args.seconds / 2) for name, size in WORKING_SETS.items()}
    rates = product_rates(args.seconds / 2)
    best_name, best = max(rates.items(), key=lambda kv: kv[1])
    print(f"multiply-add ceiling: {one:.1f} GFLOP/s on one thread ({dll.lanes()} fp32 lanes a vector), "
          f"{sum(every):.1f} on {args.threads} at once ({', '.join(f'{g:.1f}' for g in every)})")
    print("fp32 products on one thread (GFLOP/s, share of the ceiling):")
    for name, rate in rates.items():
        print(f"  {name:<24} {rate:6.1f}  {100 * rate / one:5.1f} %")
    print(f"best: {best_name}, {best:.1f} GFLOP/s = {100 * best / one:.1f} % of the ceiling")
    print("triad on one thread, GB/s by working set: " + ", ".join(f"{name} {gbs:.1f}" for name, gbs in memory.items()))
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}",
        "date": time.strftime("%Y-%m-%d %H:%M"), "load_average": os.getloadavg(),
        "fma_gflops_one_thread": one, "fma_gflops_all": every, "lanes": dll.lanes(),
        "products": rates, "best_product": [best_name, best], "triad_gbs": memory,
    }
    if args.store is not None:
        exp = experiment_flops(args.store)
        floor_products = exp["tflop"] * 1e3 / (args.threads * best)  # TFLOP / (GFLOP/s): the best rate on every core
        floor_fma = exp["tflop"] * 1e3 / sum(every)
        print(f"{args.store}: {exp['runs']} finished runs, {exp['train_tokens']:,} training and "
              f"{exp['eval_tokens']:,} evaluated real tokens, at least {exp['tflop']:.1f} TFLOP in linear layers")
        print(f"  floor on {args.threads} cores: {floor_products / 60:.1f} min at the best product rate, "
              f"{floor_fma / 60:.1f} min at the multiply-add ceiling; its wall time {exp['wall_s'] / 60:.1f} min "
              f"= {100 * floor_products / exp['wall_s']:.0f} % of the product rate over the whole experiment")
        result["store"] = {**exp, "store": str(args.store), "floor_products_s": floor_products,
                           "floor_fma_s": floor_fma}
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

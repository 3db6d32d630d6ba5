"""Do dropout-mask draws on a helper thread overlap with 2-thread bf16 matrix products, or contend?

Usage: ``python benchmarks/bench_mask_overlap.py``. Prints the products alone, the draws alone, both one
after the other and both at once (draws on a helper thread), best of 5 each, and the ideal gain: the
serial draws leave one core idle, so at best the overlap saves half their time. Result: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import torch

DT = torch.bfloat16
TOKENS, HIDDEN, FFN = 1483, 384, 1536  # an XNLI batch of 32 pairs, the default model's widths


def best_of(f: Callable[[], None], trials: int = 5) -> float:
    best = float("inf")
    for _ in range(trials):
        start = time.perf_counter()
        f()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    x0 = torch.randn(TOKENS, HIDDEN, dtype=DT)
    w1, w2 = torch.randn(HIDDEN, FFN, dtype=DT), torch.randn(FFN, HIDDEN, dtype=DT)
    masks = [torch.empty(32 * 12 * 46 * 46 * 2, dtype=DT) for _ in range(12)]

    def products() -> None:
        x = x0
        for _ in range(60):
            x = (x @ w1) @ w2

    def draws() -> None:
        for m in masks:
            m.bernoulli_(0.9)

    def serial() -> None:
        products()
        draws()

    def overlapped() -> None:
        helper = threading.Thread(target=draws)
        helper.start()
        products()
        helper.join()

    p, d, s, o = (best_of(f) for f in (products, draws, serial, overlapped))
    print(f"products {p * 1e3:.0f} ms, draws {d * 1e3:.0f} ms, serial {s * 1e3:.0f} ms, "
          f"overlapped {o * 1e3:.0f} ms: {s / o:.3f}x (ideal {s / max(p + d / 2, d):.3f}x)")


if __name__ == "__main__":
    main()

"""One attention call at evaluation's shapes: the compiled kernel against SDPA as the unpadded encoder calls it.

Usage: ``python benchmarks/bench_attention_call.py [--sequences 32] [--heads 12] [--head-size 32]
[--min-length 20] [--max-length 80] [--rounds 5] [--calls 50] [--bf16] [--train] [--other-source F.cpp]
[--json F]``

Why beside ``bench_eval_attention.py`` (whole evaluation passes): a pass also runs the linear layers,
which dominate it, so a kernel can be several times faster at attention and no faster over a pass;
this isolates the part the kernel replaces. One thread. The SDPA side spreads the unpadded
``[tokens, heads·d]`` rows into the padded layout, runs ``scaled_dot_product_attention`` with a
key-padding mask and gathers the real rows back, as ``models/unpadding.py`` does without the kernel;
the kernel side reads the rows directly. Sides alternate round by round (ABBA), each round ``--calls``
calls after a warm-up; printed: the kernel's instruction set, milliseconds per call (medians) and
their ratio, and how far the outputs are apart. ``--other-source`` builds another version of
``varlen_attention.cpp`` (e.g. ``git show OLD:src/xstilts/models/csrc/varlen_attention.cpp > old.cpp``)
and times it as a third side in the same rounds, and says whether its outputs are the kernel's to the bit.

``--train`` times training's call instead: the forward pass that keeps the softmax, with a dropout mask
(p = 0.1, drawn once), and the backward pass (the three gradients) of a random output gradient; the
SDPA side spreads the rows, runs SDPA with ``dropout_p = 0.1`` (its own draws: on a CPU that is its
unfused arithmetic) and autograd's backward, as the unpadded encoder without the kernel trains.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sequences", type=int, default=32)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--head-size", type=int, default=32)
    ap.add_argument("--min-length", type=int, default=20)
    ap.add_argument("--max-length", type=int, default=80)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=50)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--train", action="store_true", help="time training's forward and backward calls")
    ap.add_argument("--other-source", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()

    from xstilts.models import attention_kernel, extensions

    if not attention_kernel.available():
        raise SystemExit("bench_attention_call: the attention kernel is not available here (no compiler?)")
    torch.set_num_threads(1)
    dtype = torch.bfloat16 if args.bf16 else torch.float32
    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(args.min_length, args.max_length + 1, (args.sequences,), generator=g)
    tokens, width, size = int(lengths.sum()), args.heads * args.head_size, args.head_size
    q, k, v = (torch.randn(tokens, width, generator=g).to(dtype) for _ in range(3))
    longest = int(lengths.max())
    keys = torch.arange(longest)[None, :] < lengths[:, None]
    index = keys.reshape(-1).nonzero().squeeze(1)
    mask = keys[:, None, None, :]

    scale = size ** -0.5
    starts = torch.cumsum(lengths, 0) - lengths
    drop = (torch.rand(args.sequences, args.heads, longest, longest, generator=g) >= 0.1).float() / 0.9
    grad = torch.randn(tokens, width, generator=g).to(dtype)

    def calls(module):  # one side's call(s) with this build, their outputs
        if not args.train:
            return lambda: (module.attention(q, k, v, starts, lengths, args.heads, scale),)

        def train() -> tuple[torch.Tensor, ...]:
            out, probs, offsets = module.attention_train(q, k, v, starts, lengths, args.heads, scale, drop)
            return out, *module.attention_backward(grad, q, k, v, starts, lengths, args.heads, scale, drop, probs,
                                                   offsets)
        return train

    kernel = calls(attention_kernel._build())
    other = None
    if args.other_source is not None:
        built = extensions.build(args.other_source.resolve(), "bench_other_varlen_attention", "the other kernel",
                                 openmp=True)
        if built is None:
            raise SystemExit(f"bench_attention_call: {args.other_source} could not be built")
        other = calls(built)

    def spread(t: torch.Tensor) -> torch.Tensor:  # [tokens, width] -> padded [sequences, heads, longest, size]
        rows = t.new_zeros(args.sequences * longest, width).index_copy(0, index, t)
        return rows.view(args.sequences, longest, args.heads, size).transpose(1, 2)

    def gathered(out: torch.Tensor) -> torch.Tensor:  # spread's inverse: the real rows back
        return out.transpose(1, 2).reshape(args.sequences * longest, width)[index]

    def sdpa() -> tuple[torch.Tensor, ...]:
        if not args.train:
            return (gathered(F.scaled_dot_product_attention(spread(q), spread(k), spread(v), attn_mask=mask)),)
        leaves = [t.detach().requires_grad_() for t in (q, k, v)]
        out = gathered(F.scaled_dot_product_attention(*(spread(t) for t in leaves), attn_mask=mask, dropout_p=0.1))
        out.backward(grad)
        return out, *(t.grad for t in leaves)

    with torch.inference_mode():  # the outputs apart, without dropout
        plain = attention_kernel._build().attention(q, k, v, starts, lengths, args.heads, scale)
        padded = gathered(F.scaled_dot_product_attention(spread(q), spread(k), spread(v), attn_mask=mask))
        apart = float((plain.double() - padded.double()).abs().max())
    with torch.inference_mode(not args.train):
        same_bits = None if other is None else all(torch.equal(a, b) for a, b in zip(kernel(), other(), strict=True))
        sides = {"sdpa": sdpa, "kernel": kernel} | ({"other": other} if other is not None else {})
        times: dict[str, list[float]] = {name: [] for name in sides}
        for r in range(args.rounds):
            for name in list(sides) if r % 2 == 0 else list(sides)[::-1]:
                fn = sides[name]
                for _ in range(3):
                    fn()
                start = time.perf_counter()
                for _ in range(args.calls):
                    fn()
                times[name].append((time.perf_counter() - start) / args.calls * 1e3)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    result = {"instruction_set": attention_kernel.instruction_set(), "dtype": str(dtype), "tokens": tokens,
              "sequences": args.sequences, "heads": args.heads, "head_size": size,
              "ms_per_call": median, "rounds": times, "sdpa_over_kernel": median["sdpa"] / median["kernel"],
              "max_abs_difference": apart, "train": args.train, "other_same_bits": same_bits}
    what = "training's forward + backward" if args.train else "inference"
    print(f"{args.sequences} sequences of {args.min_length}-{args.max_length} tokens ({tokens}), {args.heads} heads "
          f"x {size}, {dtype}, {what}, 1 thread; kernel built for {result['instruction_set']}")
    for name in sides:
        print(f"  {name:6s} {median[name]:7.2f} ms a call (rounds: {', '.join(f'{t:.2f}' for t in times[name])})")
    print(f"SDPA / kernel: {result['sdpa_over_kernel']:.2f}x; outputs apart by at most {apart:.2e}")
    if other is not None:
        result["other_over_kernel"] = median["other"] / median["kernel"]
        print(f"other build / kernel: {result['other_over_kernel']:.2f}x ({args.other_source}); "
              f"outputs{'' if same_bits else ' not'} the same to the bit")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

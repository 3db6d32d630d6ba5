"""Training speed of this checkout against another one that should compute the same bits.

Usage: ``python benchmarks/bench_two_trees.py --other DIR [--task panx|xnli] [--steps 20] [--rounds 4]
[--threads 1] [--runtime JSON] [--json F]``

Why: a change that claims to compute the same results faster (no runtime switch, nothing in run ids)
is measured against the code before it. ``DIR`` is another checkout of xstilts, e.g. ``git worktree
add --detach /tmp/old HEAD~1``. Each round trains the default model from the same seed on the same
real English examples of ``--task`` for ``--steps`` steps, once with each tree's package (a fresh
process each, so nothing is shared), the first side alternating between rounds: the machine's drift
hits both. Printed: real tokens/s per round and side, the median ratio of the rounds' pairs, and
whether the two trees' final weights and losses are identical -- only then is the ratio one of speed
alone. ``--runtime`` sets runtime switches on both sides (e.g. the study's
``'{"fast_dropout": true, "pack_sequences": true, "bf16": true}'``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from _fresh import fresh

REPO = Path(__file__).resolve().parents[1]


def child(task_name: str, steps: int, threads: int, data_dir: Path, runtime_json: str, out: Path) -> None:
    """Train in this process with whichever ``xstilts`` the path gives; write speed and a digest."""
    import torch

    import xstilts
    from xstilts.config import RuntimeConfig, TrainConfig
    from xstilts.training.loop import Job, train
    from xstilts.training.speed import prepare_encoder

    runtime = RuntimeConfig(progress=False, threads=threads, **json.loads(runtime_json))
    tok, task, kind, feats, encoder, head = fresh(task_name, 32 * steps, data_dir)
    prepare_encoder(encoder, runtime, [feats], tok.pad_token_id)
    hp = TrainConfig(lr=2e-4, batch_size=32, max_steps=steps, eval_every=10**9)
    outcome = train(encoder, [Job(task.name, kind, head, feats)], hp, runtime, 1, tok.pad_token_id,
                    lambda step: float(step))
    digest = hashlib.sha256()
    for module in (encoder, head):
        for p in module.parameters():
            digest.update(p.detach().contiguous().numpy().tobytes())
    out.write_text(json.dumps({"seconds": outcome.train_seconds, "tokens": outcome.train_tokens,
                               "weights": digest.hexdigest(), "losses": outcome.losses,
                               "torch_threads": torch.get_num_threads(), "package": xstilts.__file__}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--other", type=Path, required=True, help="another xstilts checkout (its src/ is used)")
    ap.add_argument("--task", default="panx")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data-dir", type=Path, default=REPO / ".." / "shared" / "data")
    ap.add_argument("--runtime", default="{}", help="RuntimeConfig overrides as JSON, both sides")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child is not None:
        child(args.task, args.steps, args.threads, args.data_dir, args.runtime, args.child)
        return

    trees = {"this": REPO / "src", "other": args.other.resolve() / "src"}
    if not (trees["other"] / "xstilts").is_dir():
        raise SystemExit(f"bench_two_trees: {args.other} has no src/xstilts")
    rates: dict[str, list[float]] = {"this": [], "other": []}
    runs: dict[str, list[dict]] = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for side in (("this", "other") if r % 2 == 0 else ("other", "this")):
                out = Path(tmp) / f"{side}{r}.json"
                env = {**os.environ, "PYTHONPATH": str(trees[side])}
                subprocess.run([sys.executable, __file__, "--child", str(out), "--other", str(args.other),
                                "--task", args.task, "--steps", str(args.steps), "--threads", str(args.threads),
                                "--data-dir", str(args.data_dir), "--runtime", args.runtime], env=env, check=True)
                run = json.loads(out.read_text())
                if not Path(run["package"]).resolve().is_relative_to(trees[side].resolve()):
                    raise SystemExit(f"bench_two_trees: the {side} side imported {run['package']}")
                runs[side].append(run)
                rates[side].append(run["tokens"] / run["seconds"])
            print(f"round {r + 1}: this {rates['this'][-1]:.0f}, other {rates['other'][-1]:.0f} real tokens/s",
                  flush=True)
    ratios = [a / b for a, b in zip(rates["this"], rates["other"], strict=True)]
    same = (len({run["weights"] for side in runs.values() for run in side}) == 1
            and len({json.dumps(run["losses"]) for side in runs.values() for run in side}) == 1)
    result = {"task": args.task, "steps": args.steps, "threads": args.threads, "rounds": args.rounds,
              "runtime": json.loads(args.runtime),
              "other": str(args.other), "tokens_per_s": rates, "ratios": ratios,
              "median_ratio": statistics.median(ratios), "identical_weights_and_losses": same,
              "load_average": os.getloadavg()}
    print(f"{args.task}, {args.steps} steps a round, {args.threads} thread(s): this / other median "
          f"{result['median_ratio']:.3f}x (rounds {', '.join(f'{x:.3f}' for x in ratios)}); "
          f"weights and losses identical across every run: {same}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

"""What the retrieval benchmarks (``bench_tatoeba.py``, ``bench_bucc.py``) share: their model
arguments, the model with a header line that says where and under what load it ran, and a cache that
encodes each distinct sentence once and keeps it at both layers (one forward pass serves both).
"""

from __future__ import annotations

import argparse
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.evaluation.embed import embed_sentences_layers

LAYERS = ("xtreme", "last")  # hidden_states[8] and [12] of the 12-layer default model


def loadavg() -> str:
    """/proc/loadavg as printed beside every timing: on a shared 2-core box a time means little without it."""
    try:
        return Path("/proc/loadavg").read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"


def add_model_args(ap: argparse.ArgumentParser) -> None:
    repo = Path(__file__).resolve().parents[1]
    ap.add_argument("--data-dir", type=Path, default=repo / ".." / "shared" / "data")
    ap.add_argument("--model", default="default")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: fastest on a busy 2-core box)")
    ap.add_argument("--max-length", type=int, default=128)


class SentenceCache:
    """The model, and every sentence it has encoded, at each of :data:`LAYERS`."""

    def __init__(self, args: argparse.Namespace):
        import torch

        from xstilts.models.loading import load_encoder, load_tokenizer

        torch.set_num_threads(args.threads)
        self.encoder, self.tokenizer = load_encoder(args.model), load_tokenizer(args.model)
        self.max_length = args.max_length
        self.vectors: dict[str, tuple[np.ndarray, ...]] = {}
        print(f"model {args.model}: {self.encoder.config.num_hidden_layers} layers; torch threads {args.threads}; "
              f"{platform.processor() or platform.machine()}; {time.strftime('%Y-%m-%d %H:%M')}")
        print(f"load before: {loadavg()}", flush=True)

    def __len__(self) -> int:
        return len(self.vectors)

    def arrays(self, texts: list[str]) -> list[np.ndarray]:
        """One ``(len(texts), hidden)`` array per layer; sentences seen before are not encoded again."""
        new = list(dict.fromkeys(t for t in texts if t not in self.vectors))
        if new:
            outs = embed_sentences_layers(self.encoder, self.tokenizer, new, layers=LAYERS, max_length=self.max_length)
            for i, text in enumerate(new):
                self.vectors[text] = tuple(out[i] for out in outs)
        return [np.stack([self.vectors[t][layer] for t in texts]) for layer in range(len(LAYERS))]

    def embedder(self, layer: int) -> Any:
        """A task's ``embed(texts, language)`` at one layer (the language is not used: no prefixes)."""
        return lambda texts, language: self.arrays(list(texts))[layer]

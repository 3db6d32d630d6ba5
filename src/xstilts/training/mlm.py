"""Masked-LM on unlabelled target-language text, interleaved with phase-2 intermediate training.

Why: intermediate training on English alone can make a multilingual encoder forget its other
languages; Phang et al. (2020) mix in MLM on target-language text to counter that.

Mechanics: with probability ``mlm_rate`` a training step also takes one MLM batch and adds
``mlm_weight`` × its MLM loss to the task loss (through the loop's ``extra_loss`` hook), so the
rate is the fraction of steps that see unlabelled text. Masking is exactly the pretraining
recipe of BERT/XLM-R — 15 % of non-special tokens, of which 80 % become ``<mask>``, 10 % a random
token, 10 % unchanged — done by transformers' ``DataCollatorForLanguageModeling`` (seeded).

The head: multilingual-e5 ships without an MLM head, so a fresh one is built the BERT way —
dense + activation + LayerNorm, then a decoder whose weight *is* the encoder's word-embedding
matrix (tied, read at call time, never a copy) plus a per-token bias. The head trains with the
phase (it rides along as a submodule of the first task's head, so the loop's optimizer, device
placement and best-weight restore cover it) and is dropped afterwards: checkpoints hold the
encoder only. The MLM softmax is over the full vocabulary, as in pretraining, so MLM needs an
untrimmed embedding (``runtime.trim_vocab = false``).

Text: a folder of plain-text files, one sentence per line, named ``<language>.txt``
(``mlm_languages`` picks some; empty = all). ``mlm_data = "xtreme:tatoeba"`` builds such a folder
from the non-English sides of the files the Tatoeba task reads (:func:`extract_tatoeba_sentences`;
its options, e.g. ``dir``, from ``[intermediate.task_options.tatoeba]``); those
sentences are the inputs of the Tatoeba retrieval task, so do not combine it with Tatoeba as a
target.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from transformers import DataCollatorForLanguageModeling
from transformers.activations import ACT2FN

from xstilts.config import MLM_TATOEBA
from xstilts.errors import ConfigError, DataError
from xstilts.faults import atomic_path
from xstilts.identity import not_recording, note_read
from xstilts.tasks.formats import iter_lines


class MLMHead(nn.Module):
    """BERT-style LM head whose decoder is tied to ``encoder``'s input embeddings."""

    def __init__(self, encoder: nn.Module):
        super().__init__()
        config = encoder.config
        hidden = config.hidden_size
        self.dense = nn.Linear(hidden, hidden)
        self.activation = ACT2FN[getattr(config, "hidden_act", "gelu")]
        self.layer_norm = nn.LayerNorm(hidden, eps=getattr(config, "layer_norm_eps", 1e-12))
        self.bias = nn.Parameter(torch.zeros(encoder.get_input_embeddings().weight.shape[0]))
        self.__dict__["_encoder"] = encoder  # a reference, not a submodule: no copy in state_dict

    def decoder_weight(self) -> torch.Tensor:
        embedding = self._encoder.get_input_embeddings()
        if not isinstance(embedding, nn.Embedding):
            raise ConfigError(f"MLM needs the full word-embedding matrix, not a {type(embedding).__name__}; "
                              "set runtime.trim_vocab = false when intermediate.mlm_rate > 0")
        return embedding.weight

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Vocabulary logits for hidden states (any leading shape)."""
        h = self.layer_norm(self.activation(self.dense(hidden)))
        return nn.functional.linear(h, self.decoder_weight(), self.bias)


class WithMLM(nn.Module):
    """A task head carrying the MLM head along (forward = the task head's), so that whatever
    trains, moves and restores the task head does the same for the MLM head."""

    def __init__(self, task_head: nn.Module, mlm: MLMHead):
        super().__init__()
        self.task_head = task_head
        self.mlm = mlm

    def forward(self, encoder: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.task_head(encoder, batch)


def read_sentences(folder: Path, languages: Sequence[str] = (), max_per_language: int | None = None,
                   ) -> dict[str, list[str]]:
    """Sentences per language from ``<folder>/<lang>.txt`` (one per line, blank lines skipped)."""
    if not folder.is_dir():
        raise DataError("MLM text folder not found", folder)
    if languages:
        paths = {lang: folder / f"{lang}.txt" for lang in languages}
    else:
        paths = {p.stem: p for p in sorted(folder.glob("*.txt"))}
        if not paths:
            raise DataError("no <language>.txt files in the MLM text folder", folder)
    out: dict[str, list[str]] = {}
    for lang, path in paths.items():
        sentences: list[str] = []
        for _, line in iter_lines(path):  # missing file / bad UTF-8 → DataError with path and line
            if line.strip():
                sentences.append(line.strip())
                if max_per_language and len(sentences) >= max_per_language:
                    break
        if not sentences:
            raise DataError("no sentences (empty file?)", path)
        out[lang] = sentences
    return out


def extract_tatoeba_sentences(data_dir: Path, out_dir: Path, languages: Sequence[str] = (),
                              tatoeba_options: dict[str, Any] | None = None) -> Path:
    """Write ``<out_dir>/<lang>.txt`` from the non-English sides of the Tatoeba task's files; returns out_dir.

    The files are the ones the Tatoeba task reads (its folder, option ``dir``, and either of its
    layouts). They are written atomically and only when missing, so concurrent runs can share the
    folder.
    """
    from xstilts.tasks import get_task

    task = get_task("tatoeba", tatoeba_options, data_dir)
    available = task.sentence_languages()
    if not available:
        raise DataError("no Tatoeba files (<lang>-en.<lang>) found", task.folder())
    wanted = list(languages) or available
    for lang in wanted:
        if lang not in available:
            raise DataError(f"no Tatoeba text for language {lang!r} (have: {', '.join(available)})",
                            task.files("eval", lang)[0])
    for lang in wanted:
        target = out_dir / f"{lang}.txt"
        sources = [path for path in task.files("eval", lang) if path.is_file()]
        for source in sources:
            note_read(source)  # the run's data identity names the sources, not this derived copy
        newest = max((path.stat().st_mtime_ns for path in sources), default=0)
        if target.is_file() and target.stat().st_mtime_ns >= newest:
            continue  # rebuilt when a source changed since
        lines = [line for line in task.sentences(lang) if line.strip()]
        with atomic_path(target) as tmp:
            tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out_dir


def resolve_mlm_folder(mlm_data: str, data_dir: Path, cache_dir: Path, languages: Sequence[str],
                       tatoeba_options: dict[str, Any] | None = None) -> Path:
    """The text folder a config's ``mlm_data`` names (relative paths: from the data dir if found there).

    ``xtreme:tatoeba`` reads the Tatoeba task with ``tatoeba_options`` (its ``dir``); text from
    another folder than the default is cached apart.
    """
    if mlm_data == MLM_TATOEBA:
        folder = "mlm-tatoeba"
        if tatoeba_options and tatoeba_options.get("dir"):
            folder += "-" + hashlib.sha256(str(tatoeba_options["dir"]).encode()).hexdigest()[:10]
        return extract_tatoeba_sentences(data_dir, cache_dir / folder, languages, tatoeba_options)
    path = Path(mlm_data).expanduser()
    if not path.is_absolute() and not path.exists() and (data_dir / path).exists():
        path = data_dir / path
    return path


class MLMObjective:
    """Tokenised sentences, the seeded masking collator and the head: ``extra_loss`` for the loop."""

    def __init__(self, encoder: nn.Module, tokenizer: Any, sentences: Sequence[str], rate: float, seed: int,
                 batch_size: int, max_length: int, weight: float = 1.0):
        if not 0 < rate <= 1:
            raise ConfigError(f"mlm_rate must be in (0, 1], not {rate}")
        if tokenizer.mask_token is None:
            raise ConfigError("the tokenizer has no mask token; MLM is impossible with this model")
        self.encoder = encoder
        self.head = MLMHead(encoder)
        self.rate, self.weight, self.batch_size = rate, weight, batch_size
        ids = tokenizer(list(sentences), truncation=True, max_length=max_length)["input_ids"]
        self.features = [{"input_ids": x} for x in ids if len(x) > 2]  # more than <s> </s>
        if not self.features:
            raise DataError("no MLM sentences left after tokenisation")
        self.collator = DataCollatorForLanguageModeling(
            tokenizer, mlm=True, mlm_probability=0.15, mask_replace_prob=0.8, random_replace_prob=0.1,
            seed=seed)
        self.rng = np.random.default_rng([seed, 7919])
        self.mlm_steps = 0

    def attach(self, task_head: nn.Module) -> WithMLM:
        """Wrap a task head so the MLM head's parameters train with it."""
        return WithMLM(task_head, self.head)

    def batch(self) -> dict[str, torch.Tensor]:
        """One masked batch of sentences drawn uniformly at random."""
        size = min(self.batch_size, len(self.features))
        idx = self.rng.choice(len(self.features), size=size, replace=False)
        return self.collator([self.features[i] for i in idx])

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        device = next(self.head.parameters()).device
        batch = {k: v.to(device) for k, v in batch.items()}
        out = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        hidden = out.last_hidden_state
        chosen = batch["labels"] != -100
        if not bool(chosen.any()):  # possible for very short sentences: nothing was masked
            return self._touch()
        logits = self.head(hidden[chosen])  # only masked positions reach the vocabulary softmax
        return nn.functional.cross_entropy(logits.float(), batch["labels"][chosen])

    def _touch(self) -> torch.Tensor:
        """A zero that depends on every head parameter (keeps DDP's gradient bookkeeping happy)."""
        return sum(p.sum() for p in self.head.parameters()) * 0.0  # type: ignore[return-value]

    def extra_loss(self) -> Callable[[int], torch.Tensor | None]:
        def hook(step: int) -> torch.Tensor | None:
            if self.rng.random() >= self.rate:
                distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
                return self._touch() if distributed else None
            self.mlm_steps += 1
            return self.weight * self.loss(self.batch())
        return hook


def setup_mlm(icfg: Any, encoder: nn.Module, tokenizer: Any, data_dir: Path, cache_dir: Path, seed: int,
              batch_size: int, max_length: int) -> MLMObjective | None:
    """The MLM objective an :class:`~xstilts.config.IntermediateConfig` asks for (None when off)."""
    if icfg.mlm_rate <= 0:
        return None
    folder = resolve_mlm_folder(icfg.mlm_data, data_dir, cache_dir, icfg.mlm_languages,
                                icfg.task_options.get("tatoeba"))
    with not_recording() if icfg.mlm_data == MLM_TATOEBA else nullcontext():  # derived files: not data identity
        texts = read_sentences(folder, icfg.mlm_languages, icfg.mlm_max_sentences)
    sentences = [s for lang in sorted(texts) for s in texts[lang]]
    return MLMObjective(encoder, tokenizer, sentences, icfg.mlm_rate, seed, batch_size, max_length,
                        icfg.mlm_weight)

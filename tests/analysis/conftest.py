"""Fixtures for the analysis tests: small stores built through the public Store API.

The builders themselves live in :mod:`xstilts.analysis.synthetic` so the report tests share them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.analysis.synthetic import SyntheticTarget, write_synthetic_experiment

NER_BASE = {"en": 84.0, "de": 76.0, "fr": 78.0, "sw": 60.0, "ja": 45.0}
NLI_BASE = {"en": 84.0, "de": 77.0, "fr": 78.0, "sw": 64.0, "ur": 61.0}


def _zero_shot(base: dict[str, float], points: float) -> dict[str, float]:
    return {lang: 0.0 if lang == "en" else points for lang in base}


def opposite_experiment(path: Path, ner_effect: float, nli_effect: float) -> Path:
    """One intermediate task ('mnli') that moves the zero-shot languages of NER and NLI by chosen
    amounts (points) and leaves English alone: a change of transfer, not of the task."""
    return write_synthetic_experiment(
        path,
        [
            SyntheticTarget("panx", "f1", NER_BASE, {"mnli": _zero_shot(NER_BASE, ner_effect)}, n_examples=1000),
            SyntheticTarget("xnli", "accuracy", NLI_BASE, {"mnli": _zero_shot(NLI_BASE, nli_effect)},
                            n_examples=1000, chance=100 / 3, parallel=True),
        ],
        seeds=(0, 1, 2, 3),
        seed_sd=0.5,
        holdout_english=True,
        rng_seed=7,
    )


@pytest.fixture
def helps_ner(tmp_path: Path) -> Path:
    return opposite_experiment(tmp_path / "helps_ner", ner_effect=8.0, nli_effect=-8.0)


@pytest.fixture
def helps_nli(tmp_path: Path) -> Path:
    return opposite_experiment(tmp_path / "helps_nli", ner_effect=-8.0, nli_effect=8.0)

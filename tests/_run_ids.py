"""Run ids of the shipped configs (and of variants that switch on every option hashed into ids).

``python tests/_run_ids.py > tests/fixtures/run_ids.json`` records them; test_run_ids.py checks that
the code still computes exactly these, so stores made by earlier versions resume.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from xstilts import config as config_module
from xstilts.config import ExperimentConfig, load_config
from xstilts.plan import make_plan

CONFIGS = Path(__file__).resolve().parents[1] / "configs"

#: (name, base config, changes as nested dicts merged into its model_dump)
VARIANTS: list[tuple[str, str, dict]] = [
    ("accum", "quickstart.toml", {"intermediate": {"train": {"grad_accum_steps": 2}},
                                  "target": {"train": {"grad_accum_steps": 3}}}),
    ("dropout", "quickstart.toml", {"intermediate": {"train": {"dropout": 0.2}}, "target": {"train": {"dropout": 0.0}}}),
    ("mlm", "quickstart.toml", {"intermediate": {"mlm_rate": 0.25, "mlm_data": "xtreme:tatoeba",
                                                 "mlm_languages": ["sw", "de"], "mlm_max_sentences": 50}}),
    ("fp16", "quickstart.toml", {"runtime": {"mixed_precision": "fp16"}}),
    ("bf16", "quickstart.toml", {"runtime": {"bf16": True, "bucket_by_length": False}}),
    ("freeze", "quickstart.toml", {"runtime": {"freeze_embeddings": True}}),
    ("fast-dropout", "quickstart.toml", {"runtime": {"fast_dropout": True}}),
    ("first-token", "quickstart.toml", {"runtime": {"first_token_only": True, "fast_dropout": True}}),
    ("packed", "quickstart.toml", {"runtime": {"pack_sequences": True}}),
    ("speed-only", "quickstart.toml", {"runtime": {"threads": 2, "eval_batch_size": 7, "compile": True,
                                                   "trim_vocab": False, "fused_adamw": False}}),
    ("sampler", "study.toml", {"intermediate": {"sampler": "uniform", "task_caps": {"mnli": 10, "squad": 5}}}),
    ("options", "xtreme-all.toml", {"target": {"task_options": {"panx": {"dir": "x"}, "tatoeba": {"layer": 6}},
                                               "tasks": ["xnli", "panx", "tatoeba", "bucc"]},
                                    "intermediate": {"settings": ["none", "sick", ["mnli", "qqp"]],
                                                     "task_options": {"sick": {"dir": "x"}}}}),
]


@contextmanager
def _native_bf16(native: bool) -> Iterator[None]:
    """Plan as on a machine whose device does (not) compute bf16 natively."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(config_module, "native_bf16", lambda: native)
        yield


def _merge(base: dict, change: dict) -> dict:
    out = dict(base)
    for key, value in change.items():
        out[key] = _merge(base.get(key) or {}, value) if isinstance(value, dict) and key != "task_options" \
            else value
    return out


def run_ids() -> dict[str, list[str]]:
    """Every config's ids as planned on a machine without native bf16 (``bf16 = "auto"`` → fp32), plus
    the quickstart's where the machine has it: the same ids on every CI machine."""
    out: dict[str, list[str]] = {}
    with _native_bf16(False):
        for path in sorted(CONFIGS.glob("*.toml")):
            out[path.name] = [r.run_id for r in make_plan(load_config(path))]
        for name, base, change in VARIANTS:
            raw = load_config(CONFIGS / base).model_dump(mode="json")  # every value: overrides merge over train
            cfg = ExperimentConfig.model_validate(_merge(raw, change))
            out[f"{base}+{name}"] = [r.run_id for r in make_plan(cfg)]
    with _native_bf16(True):
        out["quickstart.toml@native-bf16"] = [r.run_id for r in make_plan(load_config(CONFIGS / "quickstart.toml"))]
    return out


if __name__ == "__main__":
    json.dump(run_ids(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")

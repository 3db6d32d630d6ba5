"""The model card's front matter is the Hub's model-index, holding the scores the store holds."""

from __future__ import annotations

from pathlib import Path

import yaml
from conftest import Trained

from xstilts.export.card import model_card
from xstilts.export.source import stored_run
from xstilts.store import Store
from xstilts.tasks.base import EVAL_SPLIT


def front_matter(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def test_model_index_holds_every_stored_final_score(trained: Trained) -> None:
    run_id = trained.runs["panx"]
    card = model_card(stored_run(trained.expdir, run_id), "tagging")
    meta = front_matter(card)
    (index,) = meta["model-index"]
    assert index["name"] == run_id
    found = {}
    for result in index["results"]:
        assert result["task"]["type"] == "token-classification"
        assert result["dataset"]["type"] == "panx"
        for metric in result["metrics"]:
            found[(result["dataset"]["config"], metric["type"])] = metric["value"]
    with Store(trained.expdir, readonly=True) as store:
        stored = {(s["language"], s["metric"]): s["value"] for s in store.run_scores(run_id)
                  if s["split"] == EVAL_SPLIT}
    assert found == stored and set(stored) == {("en", "f1"), ("de", "f1")}
    assert meta["pipeline_tag"] == "token-classification" and meta["language"] == ["en", "de"]
    # the body: phases, and the hyperparameters the store recorded
    assert "Intermediate training** (English), setting `sick`" in card
    assert "Target task** `panx`" in card
    assert "| `max_steps` | `6` |" in card and "| `lr` | `0.0005` |" in card


def test_phase2_card_has_no_target(trained: Trained) -> None:
    card = model_card(stored_run(trained.expdir, trained.runs["sick"]), None)
    meta = front_matter(card)
    assert "pipeline_tag" not in meta
    assert "Target task" not in card and "it has no task head" in card


def test_exported_readme_is_the_card(trained: Trained, tmp_path: Path) -> None:
    from xstilts.export import export_run

    done = export_run(trained.expdir, trained.runs["xnli"], tmp_path / "xnli")
    meta = front_matter((done.path / "README.md").read_text(encoding="utf-8"))
    assert {r["dataset"]["config"] for r in meta["model-index"][0]["results"]} == {"en", "de"}
    assert meta["pipeline_tag"] == "text-classification"

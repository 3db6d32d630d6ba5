"""Live tracking (``[runtime] log_with``): the quickstart's first run (PAN-X, baseline, seed 1) at
a tiny budget logs to TensorBoard, and TensorBoard's own reader gets back exactly what the store
holds: every step's loss and learning rate, every evaluation's per-language scores.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from _experiment import experiment_toml
from typer.testing import CliRunner

from xstilts.cli import app
from xstilts.config import load_config
from xstilts.errors import ConfigError
from xstilts.plan import make_plan
from xstilts.store import Store
from xstilts.tasks.base import EVAL_SPLIT

pytestmark = pytest.mark.usefixtures("one_thread")

QUICKSTART = Path(__file__).resolve().parents[2] / "configs" / "quickstart.toml"


def _config(tmp_path: Path, model: Path, data: Path, runtime: str) -> Path:
    quick = tomllib.loads(QUICKSTART.read_text())
    path = tmp_path / "track.toml"
    path.write_text(experiment_toml(
        model, data, tmp_path / "exp", name=quick["name"], seeds=quick["seeds"][:1], settings=["none"],
        tasks=[quick["target"]["tasks"][0]], languages=["en", "de", "sw"], runtime=runtime), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, mini_data: Path) -> Path:
    """The folder of a finished tracked run (its config is track.toml, its experiment exp/)."""
    root = tmp_path_factory.mktemp("tracked")
    config = _config(root, tiny_model, mini_data, 'progress = false\nlog_with = ["tensorboard"]\n')
    result = CliRunner().invoke(app, ["run", str(config)])
    assert result.exit_code == 0, result.output
    return root


def _scores(expdir: Path) -> list[tuple]:
    with Store(expdir, readonly=True) as store:
        frame = store.scores_frame()
    return sorted(zip(frame["run_id"], frame["language"], frame["split"], frame["metric"], frame["step"],
                      frame["kind"], frame["value"], strict=True))


def test_tensorboard_events_hold_what_the_store_holds(tracked: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tmp_path = tracked

    with Store(tmp_path / "exp", readonly=True) as store:
        (run,) = store.runs()
        assert (run["phase"], run["intermediate"], run["target"], run["seed"]) == ("target", "none", "panx", 1)
        extra = json.loads(run["extra"])
        curve = store.scores_frame(kind="curve")
    curve = curve[curve["split"] == EVAL_SPLIT]  # "select": the selection half, not logged

    events = tmp_path / "exp" / "tensorboard" / run["run_id"]
    assert list(events.glob("events.out.tfevents.*")), f"no event file in {events}"
    acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])

    steps = run["train_steps"]
    assert steps == 4 and len(extra["train_loss"]) == steps
    for tag, stored in (("train/loss", extra["train_loss"]), ("train/lr", extra["train_lr"])):
        logged = acc.Scalars(tag)
        assert [e.step for e in logged] == list(range(1, steps + 1)), tag
        assert [e.value for e in logged] == pytest.approx(stored, rel=1e-6), tag
    # the tiny block's 4 steps at lr 1e-3: no warmup step (int(0.1 * 4) = 0), then linear decay
    assert extra["train_lr"] == pytest.approx([1e-3 * (steps - k) / steps for k in range(steps)])
    speed = acc.Scalars("train/tokens_per_s")
    assert len(speed) == steps and all(e.value > 0 for e in speed)

    # every stored curve score (each language, each metric, each evaluation step) was logged, and nothing else
    expected = {f"eval/{r.task}/{r.language}/{r.metric}" for r in curve.itertuples()}
    assert {t for t in tags if t.startswith("eval/")} == expected
    assert {"eval/panx/en/f1", "eval/panx/de/f1", "eval/panx/sw/f1"} <= expected
    for r in curve.itertuples():
        logged = {e.step: e.value for e in acc.Scalars(f"eval/{r.task}/{r.language}/{r.metric}")}
        assert logged[r.step] == pytest.approx(r.value, rel=1e-6, abs=1e-6), (r.language, r.metric, r.step)
    assert sorted({e.step for e in acc.Scalars("eval/panx/de/f1")}) == [2, 4]


def test_tracking_changes_neither_run_ids_nor_results(tracked: Path, tmp_path: Path, tiny_model: Path,
                                                      mini_data: Path) -> None:
    config = _config(tmp_path, tiny_model, mini_data, "progress = false\n")
    ids = [r.run_id for r in make_plan(load_config(config))]
    assert ids == [r.run_id for r in make_plan(load_config(tracked / "track.toml"))]
    assert CliRunner().invoke(app, ["run", str(config)]).exit_code == 0
    assert _scores(tmp_path / "exp") == _scores(tracked / "exp")
    assert not (tmp_path / "exp" / "tensorboard").exists()


def test_a_tracker_whose_package_is_missing_is_one_config_error(tmp_path: Path, tiny_model: Path, mini_data: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import xstilts.config as config_module

    monkeypatch.setattr(config_module, "tracker_installed", lambda name: name == "tensorboard")
    config = _config(tmp_path, tiny_model, mini_data, 'log_with = ["tensorboard", "wandb"]\n')
    with pytest.raises(ConfigError) as err:
        load_config(config)
    message = str(err.value)
    assert "runtime.log_with" in message and "wandb" in message and "pip install wandb" in message
    assert f"{config}:" in message and "\n" not in message
    bad = _config(tmp_path, tiny_model, mini_data, 'log_with = ["neptune"]\n')
    with pytest.raises(ConfigError, match="runtime.log_with"):
        load_config(bad)

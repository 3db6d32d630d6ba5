"""build_report: every file is written, the HTML stands alone, and awkward stores still build."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from xstilts.analysis.synthetic import SyntheticTarget, write_synthetic_experiment
from xstilts.report import build_report
from xstilts.report.files import write_bytes_atomic
from xstilts.store import Store

NER = {"en": 84.0, "de": 76.0, "fr": 78.0, "sw": 60.0}
NLI = {"en": 84.0, "de": 77.0, "fr": 78.0, "ur": 61.0}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _experiment(path: Path, only_nli: bool = False, **kwargs) -> Path:
    targets = [
        SyntheticTarget("panx", "f1", NER, {"mnli": -3.0, "squad": 1.0}, n_examples=150),
        SyntheticTarget("xnli", "accuracy", NLI, {"mnli": 4.0, "squad": 1.0}, n_examples=150, chance=100 / 3),
    ]
    return write_synthetic_experiment(path, targets[1:] if only_nli else targets, **kwargs)


def test_full_report(tmp_path: Path) -> None:
    expdir = _experiment(tmp_path / "exp", seeds=(0, 1))
    written = build_report(expdir, n_boot=200)
    out = expdir / "report"  # the default place
    assert written["html"] == out / "report.html" and written["markdown"] == out / "report.md"
    for path in written.values():
        assert path.exists() and path.stat().st_size > 0 and path.parent == out
    assert not list(out.glob(".*.tmp"))  # no temporary files left behind

    for name in (
        "comparison",
        "effect_summary",
        "effects",
        "robustness",
        "languages",
        "selection",
        "selection_summary",
    ):
        frame = pd.read_csv(out / f"{name}.csv")
        assert len(frame) > 0, name

    html = written["html"].read_text(encoding="utf-8")
    images = re.findall(r'<img[^>]*src="([^"]+)"', html)
    assert len(images) >= 7  # 2 targets x (heatmap, CI dots, seed spread) + transfer gap
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "<style>" in html and "Answer:" in html and "NER vs NLI" in html

    md = written["markdown"].read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == len(images)
    for name in linked:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    assert "| Intermediate | Measure |" in md
    assert written["summary"].read_text(encoding="utf-8").startswith("Question:")


def test_out_dir_and_rebuild(tmp_path: Path) -> None:
    expdir = _experiment(tmp_path / "exp", only_nli=True, seeds=(0,), with_curves=False)
    first = build_report(expdir, out_dir=tmp_path / "elsewhere", n_boot=50)
    again = build_report(expdir, out_dir=tmp_path / "elsewhere", n_boot=50)
    assert first == again and first["html"].parent == tmp_path / "elsewhere"
    html = first["html"].read_text(encoding="utf-8")
    assert "–" in html  # seed std with one seed
    assert "no seed spread to show" in html and "No training curves" in html


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seeds": (0,), "with_stats": False},  # no interval anywhere
        {"seeds": (0, 1), "with_baseline": False},  # nothing to compare with
    ],
    ids=["one-seed-no-stats", "no-baseline"],
)
def test_awkward_stores_still_build(tmp_path: Path, kwargs: dict) -> None:
    expdir = _experiment(tmp_path / "exp", only_nli=True, **kwargs)
    written = build_report(expdir, n_boot=50)
    html = written["html"].read_text(encoding="utf-8")
    assert "Answer:" in html and html.rstrip().endswith("</html>")


def test_atomic_write_replaces_whole_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    write_bytes_atomic(target, b"first version, longer")
    write_bytes_atomic(target, b"second")
    assert target.read_bytes() == b"second"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_empty_store_builds_a_report_that_says_so(tmp_path: Path) -> None:
    Store(tmp_path).close()
    written = build_report(tmp_path, n_boot=20)
    assert "cannot answer" in written["summary"].read_text(encoding="utf-8")
    assert written["html"].exists() and written["markdown"].exists()


def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    """The issue's check, as `scripts/render_report.py` runs it for docs/report.png."""
    import shutil
    import sys

    if not any(shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome", "chrome")):
        pytest.skip("no Chromium on this machine (apt-get install chromium)")
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    try:
        from render_report import check
    finally:
        sys.path.pop(0)
    written = build_report(_experiment(tmp_path / "exp", seeds=(0, 1)), n_boot=100)
    shot = tmp_path / "shot.png"
    assert check(written["html"], shot, "800,600") == []
    assert shot.read_bytes().startswith(PNG_MAGIC)
    # and it does fail: an image that points elsewhere, and a script error
    broken = tmp_path / "broken.html"
    broken.write_text(written["html"].read_text(encoding="utf-8").replace(
        "</body>", '<img src="missing.png"><script>undefinedFunction()</script></body>'), encoding="utf-8")
    problems = check(broken, None)
    assert any("not embedded" in p for p in problems)
    assert any("chromium log" in p for p in problems), problems

"""build_report: every file is written, the HTML stands alone, and awkward stores still build."""

from __future__ import annotations

import io
import json
import re
from base64 import b64decode
from html import escape
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
        "replication",
        "measures",
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
    assert len(images) >= 8  # answer + 2 targets x (heatmap, CI dots, seed spread) + transfer gap
    assert all(src.startswith("data:image/png;base64,") for src in images)
    assert not re.search(r"https?://|//[a-z0-9.-]+\.[a-z]{2,}/", html, re.IGNORECASE)
    assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
    assert "<style>" in html and "<p>Answer" in html and "NER vs NLI" in html
    for section in ("Replication on split halves", "Effects per measure and target", "Per-language effects",
                    "Robustness (descriptive)", "Seed spread", "Model selection", "Method"):
        assert f"<h2>{section}" in html, section
    for header in ("NER − NLI [CI]", "MDE80", "Seeds needed", "Baseline → intermediate",
                   "Item share", "Improved / hurt / n.s."):
        assert f"<th>{header}</th>" in html, header
    assert "transfer ratio (primary), pp" in html and "Satterthwaite" in html and "docs/statistics.md" in html

    md = written["markdown"].read_text(encoding="utf-8")
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(linked) == len(images)
    for name in linked:
        assert (out / name).read_bytes().startswith(PNG_MAGIC)
    assert "| Intermediate | Measure, unit of Δ |" in md
    assert written["summary"].read_text(encoding="utf-8").startswith("Question:")


def test_the_runs_computation_is_reported_and_mixed_precision_warned(tmp_path: Path) -> None:
    """A run that changed its thread count is named in the Method's computation notes; a target whose
    settings ran at different precisions gets a warning (the store's run records, as a real run writes them)."""
    expdir = _experiment(tmp_path / "exp", seeds=(0, 1))
    with Store(expdir) as store:
        targets = [r for r in store.runs() if r["target"] == "panx"]
        for i, run in enumerate(targets):
            log = [[0, 1, 1.0], [40, 2, 0.02]] if i == 0 else [[0, 1, 1.0]]
            precision = "bf16" if run["intermediate"] == "mnli" else "no"
            extra = {"speed": {"threads": 1, "thread_log": log, "precision": precision}}
            with store.transaction() as c:
                c.execute("UPDATE runs SET extra=? WHERE run_id=?", (json.dumps(extra), run["run_id"]))
    md = build_report(expdir, n_boot=50)["markdown"].read_text(encoding="utf-8")
    computation = md.split("### Computation", 1)[1].split("## ", 1)[0]
    assert f"{targets[0]['run_id']} (1 → 2 after step 40)" in computation
    assert f"Precision: fp32 in {len(targets) - sum(r['intermediate'] == 'mnli' for r in targets)}" in computation
    warnings = md.split("## Warnings", 1)[1].split("## Files", 1)[0]
    assert "panx: its runs used more than one precision" in warnings and "mnli: bf16 autocast" in warnings


def _words(html: str) -> str:
    """The text of an HTML fragment, tags removed and white space collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()


def test_answer_figure_comes_first_with_the_answer_under_it(tmp_path: Path) -> None:
    expdir = _experiment(tmp_path / "exp", seeds=(0, 1, 2))
    written = build_report(expdir, n_boot=100)
    out = written["html"].parent
    assert (out / "answer.png").read_bytes().startswith(PNG_MAGIC)
    answer = written["summary"].read_text(encoding="utf-8").split("\n\n")[1].splitlines()[0]
    assert answer.startswith("Answer")

    html = written["html"].read_text(encoding="utf-8")
    body = html[html.index("</h1>") + len("</h1>"):]
    first = re.search(r"<img[^>]*>", body)
    assert first is not None and body.index("<img") == body.index("<figure>") + len("<figure>")
    assert body[: body.index("<figure>")].strip() == ""  # nothing between the title and the figure
    with_caption = body[first.end():]
    after = with_caption[with_caption.index("</figure>") + len("</figure>"):]
    assert _words(after).startswith(escape(answer))  # the calibrated sentence right under the figure
    src = re.search(r'src="data:image/png;base64,([^"]+)"', first.group(0))
    assert src is not None and b64decode(src.group(1)) == (out / "answer.png").read_bytes()

    md = written["markdown"].read_text(encoding="utf-8")
    paras = [p for p in md.split("\n\n") if p.strip()]
    assert paras[0].startswith("# ")
    assert re.fullmatch(r"!\[[^\]]*\]\(answer\.png\)", paras[1])  # the first image, right after the title
    assert paras[2].startswith("_Question:")  # its caption
    assert paras[3] == answer


def test_one_row_of_panels_per_setting(tmp_path: Path) -> None:
    """Two settings: a taller answer figure, and the primary intervals widen to the simultaneous level."""
    from matplotlib.image import imread

    from xstilts.analysis import analyze
    from xstilts.report.plots import answer_figure

    one = analyze(_experiment(tmp_path / "one", seeds=(0, 1)), n_boot=50)
    one.effects = one.effects[one.effects["intermediate"] == "mnli"]
    two = analyze(_experiment(tmp_path / "two", seeds=(0, 1)), n_boot=50)
    h1, h2 = (imread(io.BytesIO(answer_figure(a))).shape[0] for a in (one, two))
    assert h2 > 1.7 * h1
    assert set(two.comparison.loc[two.comparison["primary"], "level"]) == {1 - 0.05 / 2}


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
    md = written["markdown"].read_text(encoding="utf-8")
    assert "Answer:" in md
    if kwargs.get("with_baseline") is False:
        assert "No answer figure" in html and "No comparison" in html and "No effects" in html
        assert "<img" not in html.split("<h2>")[0]


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
    html = written["html"].read_text(encoding="utf-8")
    assert "cannot answer" in html and "No answer figure" in html and "Replication not available" in html
    assert written["markdown"].exists()


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

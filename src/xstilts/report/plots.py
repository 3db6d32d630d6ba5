"""The report's figures, rendered to PNG bytes with matplotlib's Agg canvas.

Why bytes and the object-oriented API: the HTML embeds them as base64 and the Markdown writes
them next to itself, from the same render; and building ``Figure`` objects on an explicit Agg
canvas never touches pyplot's global state or the user's configured backend, so the report
can be built from a CLI, a notebook or a headless worker alike. Each function returns ``None``
when there is nothing to draw, and the report says so instead of showing an empty axis.
"""

from __future__ import annotations

import io
import math
import re

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from xstilts.analysis import Analysis
from xstilts.analysis.measures import PRIMARY
from xstilts.analysis.summary import METRIC_NAMES, fmt
from xstilts.config import BASELINE

DPI = 100
_MARKERS = "osD^v<>p"  # shapes that read hollow as well as filled (n.s. vs significant)


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # constrained layout already fits the labels; bbox_inches="tight" would draw everything twice
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _colours(a: Analysis) -> dict[str, tuple]:
    """One colour per setting, the same in every figure of the report (baseline first)."""
    from matplotlib import colormaps

    baseline = a.info.get("baseline", BASELINE)
    names = sorted(
        set(a.robustness["intermediate"]) | set(a.effects["intermediate"]), key=lambda n: (n != baseline, n)
    )
    cmap = colormaps["tab10"]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def _languages_by_baseline(a: Analysis, target: str) -> list[str]:
    """Source first, then zero-shot languages from the best to the worst baseline score."""
    e = a.effects[a.effects["target"] == target]
    base = e.groupby("language")["baseline_score"].first()
    source = a.info.get("source", "en")
    rest = [lang for lang in base.sort_values(ascending=False).index if lang != source]
    return ([source] if source in base.index else []) + rest


def holm_significant(effects: pd.DataFrame) -> pd.Series:
    """True where the per-language verdict (Holm across zero-shot languages) is a change."""
    return effects["verdict"].isin(["improved", "hurt"])


def _wrapped(setting: str, width: int = 18) -> str:
    """A multi-task setting's long name broken after its '+' signs into lines of about ``width``."""
    lines = [""]
    for part in setting.split("+"):
        piece = part if not lines[-1] else "+" + part
        if lines[-1] and len(lines[-1]) + len(piece) > width:
            lines[-1] += "+"
            lines.append(part)
        else:
            lines[-1] += piece
    return "\n".join(lines)


def delta_heatmap(a: Analysis, target: str) -> bytes | None:
    """Change vs baseline per (intermediate, language); '*' marks Holm-significant cells."""
    e = a.effects[a.effects["target"] == target]
    if e.empty:
        return None
    langs = _languages_by_baseline(a, target)
    settings = list(dict.fromkeys(e["intermediate"]))
    grid = e.pivot(index="intermediate", columns="language", values="delta").reindex(
        index=settings, columns=langs
    )
    sig = (
        e.assign(_sig=holm_significant(e))
        .pivot(index="intermediate", columns="language", values="_sig")
        .reindex(index=settings, columns=langs)
    )
    values = grid.to_numpy(dtype=float)
    every = a.effects["delta"].to_numpy(dtype=float)  # one colour scale for every target's heatmap
    lim = float(np.nanmax(np.abs(every))) if np.isfinite(every).any() else 1.0
    lim = lim if lim > 0 else 1.0
    labels = [_wrapped(name) for name in settings]
    label_in = 0.075 * max(len(line) for name in labels for line in name.split("\n"))
    fig = Figure(figsize=(max(5.0, 0.55 * len(langs) + 2.0 + label_in), 0.6 * len(settings) + 1.8),
                 layout="constrained")
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 15 else 0)
    ax.set_yticks(range(len(settings)), labels)
    show_numbers = len(langs) <= 20
    for i in range(len(settings)):
        for j in range(len(langs)):
            v = values[i, j]
            if not math.isfinite(v):
                continue
            mark = "*" if bool(sig.iat[i, j]) is True else ""
            text = f"{v:+.1f}{mark}" if show_numbers else mark
            if text:
                dark = abs(v) > 0.6 * lim
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white" if dark else "black")
    metric = a.info.get("metrics", {}).get(target, "")
    fig.colorbar(im, ax=ax, label=f"Δ {metric} (points; one scale for every target)", shrink=0.9)
    ax.set_title(f"{target}: Δ vs no intermediate task\n(* Holm-significant)", fontsize=10)
    return _png(fig)


def delta_dotplot(a: Analysis, target: str) -> bytes | None:
    """Per-language change with its 95 % CI; filled markers are Holm-significant."""
    e = a.effects[a.effects["target"] == target]
    if e.empty:
        return None
    langs = _languages_by_baseline(a, target)
    pos = {lang: i for i, lang in enumerate(langs)}
    settings = list(dict.fromkeys(e["intermediate"]))
    colours = _colours(a)
    fig = Figure(figsize=(max(6.0, 0.38 * len(langs) + 2.0), 4.2), layout="constrained")
    ax = fig.add_subplot()
    width = 0.7 / max(len(settings), 1)
    handles: list[Line2D] = []  # one entry a setting; filled / hollow said once (long names fit in 3 columns)
    for k, inter in enumerate(settings):
        sub = e[e["intermediate"] == inter]
        x = np.array([pos[lang] for lang in sub["language"]]) + (k - (len(settings) - 1) / 2) * width
        y = sub["delta"].to_numpy(float)
        lo, hi = sub["ci_lo"].to_numpy(float), sub["ci_hi"].to_numpy(float)
        has_ci = np.isfinite(lo) & np.isfinite(hi)
        if has_ci.any():
            ax.errorbar(
                x[has_ci],
                y[has_ci],
                yerr=[y[has_ci] - lo[has_ci], hi[has_ci] - y[has_ci]],
                fmt="none",
                ecolor=colours[inter],
                elinewidth=1,
                capsize=2,
            )
        sig = holm_significant(sub).to_numpy(bool)
        marker = _MARKERS[k % len(_MARKERS)]
        ax.scatter(x[sig], y[sig], color=colours[inter], marker=marker, zorder=3)
        ax.scatter(x[~sig], y[~sig], facecolors="white", edgecolors=colours[inter], marker=marker, zorder=3)
        handles.append(Line2D([], [], color=colours[inter], marker=marker, linestyle="none", label=inter))
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 15 else 0)
    metric = a.info.get("metrics", {}).get(target, "")
    ax.set_ylabel(f"Δ {metric} (points)")
    ax.set_title(f"{target}: Δ per language with 95 % CI", fontsize=11)
    handles += [Line2D([], [], color="black", marker="o", linestyle="none", label="filled: significant (Holm)"),
                Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="none",
                       label="hollow: not significant")]
    fig.legend(handles=handles, fontsize=7, ncol=min(len(handles), 3), loc="outside lower center", frameon=False)
    return _png(fig)


def seed_spread_boxplot(a: Analysis, target: str) -> bytes | None:
    """Distribution over zero-shot languages of the seed standard deviation, per setting."""
    lang = a.languages[(a.languages["target"] == target) & a.languages["zero_shot"]]
    if lang.empty or lang["seed_std"].notna().sum() == 0:
        return None
    settings = list(dict.fromkeys(lang["intermediate"]))
    data = [lang.loc[lang["intermediate"] == s, "seed_std"].dropna().to_numpy(float) for s in settings]
    keep = [i for i, d in enumerate(data) if d.size]
    settings, data = [settings[i] for i in keep], [data[i] for i in keep]
    colours = _colours(a)
    fig = Figure(figsize=(max(4.0, 1.2 * len(settings) + 1.5), 3.8), layout="constrained")
    ax = fig.add_subplot()
    ax.boxplot(data, showfliers=False)
    ax.set_xticks(range(1, len(settings) + 1), settings)
    rng = np.random.default_rng(0)
    for i, (s, d) in enumerate(zip(settings, data, strict=True), start=1):
        ax.scatter(
            i + rng.uniform(-0.15, 0.15, d.size), d, s=12, color=colours.get(s, "black"), alpha=0.7, zorder=3
        )
    metric = a.info.get("metrics", {}).get(target, "")
    ax.set_ylabel(f"seed std of {metric} (points)")
    ax.set_title(f"{target}: seed spread per language", fontsize=11)
    return _png(fig)


def transfer_gap_bars(a: Analysis) -> bytes | None:
    """Transfer gap (source minus mean zero-shot score) per setting, one panel per target."""
    r = a.robustness.dropna(subset=["transfer_gap"])
    if r.empty:
        return None
    targets = list(dict.fromkeys(r["target"]))
    colours = _colours(a)
    fig = Figure(figsize=(max(4.5, 3.6 * len(targets)), 4.6), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        sub = r[r["target"] == target]
        names = list(sub["intermediate"])
        vals = sub["transfer_gap"].to_numpy(float)
        bars = ax.bar(range(len(names)), vals, color=[colours[n] for n in names])
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in vals], fontsize=8)
        ax.set_xticks(range(len(names)), [_wrapped(n, 14) for n in names], rotation=90 if len(names) > 3 else 0,
                      fontsize=8)
        ax.set_title(target)
        ax.set_ylabel("transfer gap (points)")
    fig.suptitle("Transfer gap: source minus mean zero-shot\n(it also shrinks when the source score falls)",
                 fontsize=11)
    return _png(fig)

# Answer figure: colour says whether an interval excludes zero (and on which side)
ABOVE, BELOW, SPANS = "#1f5fa8", "#c8461b", "#8c8c8c"
QUESTION = "Does English intermediate training change zero-shot transfer differently for NER than for NLI?"


def _colour(lo: float, hi: float) -> str:
    if math.isfinite(lo) and math.isfinite(hi):
        if lo > 0:
            return ABOVE
        if hi < 0:
            return BELOW
    return SPANS


def _level_text(level: float) -> str:
    return f"{level * 100:.1f}".rstrip("0").rstrip(".") + " %"


def _num(x: float) -> str:
    return fmt(x, signed=True)


def _interval(lo: float, hi: float) -> str:
    return f"[{_num(lo)}, {_num(hi)}]" if math.isfinite(lo) and math.isfinite(hi) else "(no CI)"


def _point(ax, y: float, delta: float, lo: float, hi: float, filled: bool, marker: str = "o", size: float = 6.5,
           width: float = 1.6) -> None:
    """One row of a forest plot: the interval as a bar, the estimate as a marker."""
    colour = _colour(lo, hi)
    if math.isfinite(lo) and math.isfinite(hi):
        ax.plot([lo, hi], [y, y], color=colour, linewidth=width, solid_capstyle="butt", zorder=2)
    ax.plot([delta], [y], marker=marker, markersize=size, color=colour, markeredgecolor=colour,
            markerfacecolor=colour if filled else "white", markeredgewidth=1.4, linestyle="none", zorder=3)


def _xlim(values: list[float]) -> tuple[float, float]:
    """Limits that contain every estimate and interval, and zero."""
    v = [x for x in values if math.isfinite(x)] + [0.0]
    lo, hi = min(v), max(v)
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    return lo - pad, hi + pad


def _forest(ax, a: Analysis, target: str, inter: str, label: str, xlim: tuple[float, float]) -> None:
    """Per-language Δ with CI: English (in-language) on top, zero-shot languages by baseline score."""
    source = a.info.get("source", "en")
    metric = a.info.get("metrics", {}).get(target, "")
    name = METRIC_NAMES.get(metric, metric)
    e = a.effects[(a.effects["target"] == target) & (a.effects["intermediate"] == inter)]
    e = e[np.isfinite(e["delta"].to_numpy(float))]
    ax.axvline(0.0, color="black", linewidth=1.0, zorder=2.5)
    ax.set_xlim(*xlim)
    ax.set_xlabel(f"Δ {name} (points)", fontsize=9)
    head = f"{label} ({target})"
    if e.empty:
        ax.set_title(head, fontsize=9.5, loc="left")
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlabel("")
        ax.text(0.5, 0.5, f"no effects for {target}\n(missing runs or baseline)", transform=ax.transAxes,
                ha="center", va="center", fontsize=9, color="#555")
        return
    en = e[~e["zero_shot"].astype(bool)]
    zs = e[e["zero_shot"].astype(bool)].sort_values("baseline_score", ascending=False)
    ys, labels = [], []
    y = 0.0
    if len(en):
        r = en.iloc[0]
        ax.axhspan(-0.5, 0.5, color="#eeeeee", zorder=0)
        _point(ax, 0.0, r["delta"], r["ci_lo"], r["ci_hi"], r["verdict"] in ("improved", "hurt"), marker="D")
        ys.append(0.0)
        labels.append(f"{r['language']} (in-language)" if r["language"] == source else str(r["language"]))
        y = 1.5
        ax.axhline(0.75, color="#999999", linewidth=0.8, linestyle="--", zorder=1)
    for _, r in zs.iterrows():
        _point(ax, y, r["delta"], r["ci_lo"], r["ci_hi"], r["verdict"] in ("improved", "hurt"))
        ys.append(y)
        labels.append(str(r["language"]))
        y += 1.0
    ax.set_yticks(ys, labels, fontsize=9)
    if len(en):
        ax.get_yticklabels()[0].set_fontweight("bold")
    ax.set_ylim(max(ys) + 0.7, -0.7)
    ax.tick_params(axis="x", labelsize=8.5)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    m = a.measures[(a.measures["target"] == target) & (a.measures["intermediate"] == inter)
                   & (a.measures["measure"] == PRIMARY.key)]
    ratio = ""
    if len(m):
        r = m.iloc[0]
        ratio = (f"\ntransfer ratio {fmt(r['baseline_value'])} % → {fmt(r['value'])} %"
                 f"\nΔ {_num(r['delta'])} pp {_interval(r['ci_lo'], r['ci_hi'])}")
    ax.set_title(f"{head}, {name}{ratio}", fontsize=9.5, loc="left")
    ax.set_axisbelow(True)


def _primary_panel(ax, a: Analysis, inter: str) -> None:
    """The primary measure's change for each target, and NER − NLI with its (simultaneous) CI."""
    ner, nli = a.info.get("ner_target", "panx"), a.info.get("nli_target", "xnli")
    m = a.measures[(a.measures["intermediate"] == inter) & (a.measures["measure"] == PRIMARY.key)]
    c = a.comparison[(a.comparison["intermediate"] == inter) & a.comparison["primary"].astype(bool)] \
        if len(a.comparison) else a.comparison
    rows = []  # (label, delta, lo, hi, decided)
    for label, target in (("NER", ner), ("NLI", nli)):
        t = m[m["target"] == target]
        if len(t):
            r = t.iloc[0]
            rows.append((label, r["delta"], r["ci_lo"], r["ci_hi"], bool(np.isfinite(r["p"]) and r["p"] < 0.05)))
    ax.axvline(0.0, color="black", linewidth=1.0, zorder=2.5)
    ax.grid(axis="x", color="#e5e5e5", linewidth=0.6)
    ax.set_axisbelow(True)
    ys = list(range(len(rows)))
    values = []
    for y, (_, d, lo, hi, dec) in zip(ys, rows, strict=True):
        _point(ax, y, d, lo, hi, dec)
        values += [d, lo, hi]
    title = "Transfer ratio Δ (pp)"
    labels = [f"{r[0]}\n{_num(r[1])} {_interval(r[2], r[3])}" for r in rows]
    if len(c):
        r = c.iloc[0]
        y = len(rows) + 0.5
        ax.axhline(y - 0.75, color="#999999", linewidth=0.8, linestyle="--", zorder=1)
        ax.axhspan(y - 0.5, y + 0.5, color="#eeeeee", zorder=0)
        if np.isfinite(r["diff"]):
            _point(ax, y, r["diff"], r["diff_lo"], r["diff_hi"], bool(r["decided"]), marker="s", size=8, width=2.6)
        values += [r["diff"], r["diff_lo"], r["diff_hi"]]
        ys.append(y)
        level = float(r["level"])
        simult = "" if abs(level - 0.95) < 1e-9 else f" ({_level_text(level)} CI)"
        labels.append(f"NER − NLI{simult}\n{_num(r['diff'])} {_interval(r['diff_lo'], r['diff_hi'])}")
        verdict = {"NER": "NER more robust", "NLI": "NLI more robust", "neither": "CI includes 0: no verdict"}
        title += "\n" + verdict.get(r["favours"], str(r["favours"]))
    else:
        title += "\nno NER − NLI comparison"
    if ys:
        ax.set_yticks(ys, labels, fontsize=8.5)
        if len(c):
            ax.get_yticklabels()[-1].set_fontweight("bold")
        ax.set_ylim(max(ys) + 0.7, -0.7)
    else:
        ax.set_yticks([])
    ax.set_xlim(*_xlim(values))
    ax.tick_params(axis="x", labelsize=8.5)
    ax.set_xlabel("Δ transfer ratio (pp)", fontsize=9)
    ax.set_title(title, fontsize=9.5, loc="left")


def answer_figure(a: Analysis) -> bytes | None:
    """The first screen: per setting, NER and NLI per-language Δ side by side, then the primary measure."""
    ner, nli = a.info.get("ner_target", "panx"), a.info.get("nli_target", "xnli")
    e = a.effects[a.effects["target"].isin([ner, nli])]
    if e.empty:
        return None
    settings = list(dict.fromkeys(list(a.comparison["intermediate"]) + sorted(set(e["intermediate"]))))
    settings = [s for s in settings if s in set(e["intermediate"])]
    n_lang = max(int(e.groupby(["target", "intermediate"]).size().max()), 3)
    row_h = max(3.4, (0.3 if n_lang <= 15 else 0.2) * n_lang + 2.0)
    fig = Figure(figsize=(10.0, row_h * len(settings) + 0.9), layout="constrained")
    fig.suptitle(QUESTION, fontsize=11.5, fontweight="bold")
    subfigs = np.atleast_1d(fig.subfigures(len(settings), 1))
    for sub, inter in zip(subfigs, settings, strict=True):
        sub.suptitle(f"Intermediate task: {inter}  (Δ vs no intermediate task)", fontsize=10.5, x=0.01,
                     ha="left")
        axes = sub.subplots(1, 3, width_ratios=[1.0, 1.0, 0.8])
        pair = e[e["intermediate"] == inter]
        xlim = _xlim(list(pair["delta"]) + list(pair["ci_lo"]) + list(pair["ci_hi"]))
        _forest(axes[0], a, ner, inter, "NER", xlim)
        _forest(axes[1], a, nli, inter, "NLI", xlim)
        _primary_panel(axes[2], a, inter)
    handles = [
        Line2D([], [], color=ABOVE, marker="o", linewidth=1.6, label="CI above 0"),
        Line2D([], [], color=BELOW, marker="o", linewidth=1.6, label="CI below 0"),
        Line2D([], [], color=SPANS, marker="o", linewidth=1.6, label="CI includes 0"),
        Line2D([], [], color="black", marker="o", linestyle="none", label="filled: significant (per language: Holm)"),
        Line2D([], [], color="black", marker="o", markerfacecolor="white", linestyle="none",
               label="hollow: not significant"),
    ]
    fig.legend(handles=handles, loc="outside lower center", ncol=5, fontsize=8.5, frameon=False)
    return _png(fig)


def figure_key(kind: str, target: str | None = None) -> str:
    """The figure's name and file stem; target names are made safe for a file name."""
    return kind if target is None else f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]', '_', str(target))}"


def render_all(a: Analysis) -> dict[str, bytes]:
    """Every figure of the report, keyed by a file-name stem, in reading order."""
    out: dict[str, bytes] = {}
    answer = answer_figure(a)
    if answer is not None:
        out[figure_key("answer")] = answer
    targets = sorted(set(a.effects["target"]) | set(a.robustness["target"]))
    for target in targets:
        for name, fn in (
            ("delta_heatmap", delta_heatmap),
            ("delta_ci", delta_dotplot),
            ("seed_spread", seed_spread_boxplot),
        ):
            png = fn(a, target)
            if png is not None:
                out[figure_key(name, target)] = png
    gap = transfer_gap_bars(a)
    if gap is not None:
        out[figure_key("transfer_gap")] = gap
    return out

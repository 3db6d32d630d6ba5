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
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import TwoSlopeNorm
from matplotlib.figure import Figure

from xstilts.analysis import Analysis

DPI = 100
_MARKERS = "osD^vP*X"


def _png(fig: Figure) -> bytes:
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    # constrained layout already fits the labels; bbox_inches="tight" would draw everything twice
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _colours(a: Analysis) -> dict[str, tuple]:
    """One colour per setting, the same in every figure of the report (baseline first)."""
    from matplotlib import colormaps

    baseline = a.info.get("baseline", "none")
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
    sig = e.pivot(index="intermediate", columns="language", values="significant").reindex(
        index=settings, columns=langs
    )
    values = grid.to_numpy(dtype=float)
    lim = float(np.nanmax(np.abs(values))) if np.isfinite(values).any() else 1.0
    lim = lim if lim > 0 else 1.0
    fig = Figure(
        figsize=(max(5.0, 0.42 * len(langs) + 2.5), 0.55 * len(settings) + 1.8), layout="constrained"
    )
    ax = fig.add_subplot()
    im = ax.imshow(values, cmap="RdBu", norm=TwoSlopeNorm(0.0, -lim, lim), aspect="auto")
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 15 else 0)
    ax.set_yticks(range(len(settings)), settings)
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
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color="white" if dark else "black")
    metric = a.info.get("metrics", {}).get(target, "")
    fig.colorbar(im, ax=ax, label=f"Δ {metric} (points)", shrink=0.9)
    ax.set_title(f"{target}: Δ vs no intermediate task (* Holm-significant)", fontsize=11)
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
        sig = sub["significant"].to_numpy(bool)
        marker = _MARKERS[k % len(_MARKERS)]
        ax.scatter(
            x[sig], y[sig], color=colours[inter], marker=marker, zorder=3, label=f"{inter} (significant)"
        )
        ax.scatter(
            x[~sig],
            y[~sig],
            facecolors="white",
            edgecolors=colours[inter],
            marker=marker,
            zorder=3,
            label=f"{inter} (n.s.)",
        )
    ax.axhline(0.0, color="grey", linewidth=0.8)
    ax.set_xticks(range(len(langs)), langs, rotation=90 if len(langs) > 15 else 0)
    metric = a.info.get("metrics", {}).get(target, "")
    ax.set_ylabel(f"Δ {metric} (points)")
    ax.set_title(f"{target}: Δ per language with 95 % CI", fontsize=11)
    fig.legend(fontsize=7, ncol=min(2 * len(settings), 6), loc="outside lower center")
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
    fig = Figure(figsize=(max(4.5, 3.4 * len(targets)), 3.8), layout="constrained")
    axes = fig.subplots(1, len(targets), squeeze=False)[0]
    for ax, target in zip(axes, targets, strict=True):
        sub = r[r["target"] == target]
        names = list(sub["intermediate"])
        vals = sub["transfer_gap"].to_numpy(float)
        bars = ax.bar(range(len(names)), vals, color=[colours[n] for n in names])
        ax.bar_label(bars, labels=[f"{v:.1f}" for v in vals], fontsize=8)
        ax.set_xticks(range(len(names)), names, rotation=30 if len(names) > 3 else 0)
        ax.set_title(target)
        ax.set_ylabel("transfer gap (points)")
    fig.suptitle("Transfer gap: source minus mean zero-shot (lower is better)", fontsize=11)
    return _png(fig)


def figure_key(kind: str, target: str | None = None) -> str:
    """The figure's name and file stem; target names are made safe for a file name."""
    return kind if target is None else f"{kind}_{re.sub(r'[^A-Za-z0-9_.-]', '_', str(target))}"


def render_all(a: Analysis) -> dict[str, bytes]:
    """Every figure of the report, keyed by a file-name stem, in reading order."""
    out: dict[str, bytes] = {}
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

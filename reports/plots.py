"""Speed-vs-quality curves and per-label bar charts (matplotlib, PNG).

Figures are drawn on ``matplotlib.figure.Figure`` with the Agg canvas, never through pyplot, so a
report leaves the caller's matplotlib state alone and needs no display.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from evalkit.reports.ablation import varying_keys
from evalkit.reports.leaderboard import column_label

#: the "[key=value, ...]" suffix the runner appends to the labels of swept entries
SWEEP_SUFFIX = re.compile(r"\[[^\]]*\]$")
X_AXES = {"seconds": ("gen_seconds_per_video", "generation seconds per video"),
          "nfe": ("nfe_per_video", "network evaluations per video")}


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(fig)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def _short(value: object) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def speed_quality_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Measured rows with a speed, plus ``family`` and ``setting`` (the swept values).

    A family is a run-config entry: the row label without its ``[key=value]`` sweep suffix
    (``fit-tiny[steps=8]`` -> ``fit-tiny``), so two entries of one generator (two checkpoints) draw two
    curves. The swept setting of a family is the set of config keys that differ between its rows.
    """
    measured = frame[(frame["source"] == "measured")
                     & (frame["gen_seconds_per_video"].notna() | frame["nfe_per_video"].notna())].copy()
    if measured.empty:
        return measured.assign(family=[], setting=[], sweep_value=[])
    measured["family"] = [SWEEP_SUFFIX.sub("", str(g)) for g in measured["generator"]]
    settings, sweep_values = [], []
    keys_by_family = {}
    for family, group in measured.groupby("family"):
        swept = [f"params.{k}" for sw in group["swept"] if isinstance(sw, dict) for k in sw]
        per_gen = {g: c for g, c in zip(group["generator"], group["config"])}
        varying = [k for k in varying_keys(list(per_gen.values())) if k != "generator"]
        # the runner's declared sweep first, then any other setting that differs
        keys_by_family[family] = list(dict.fromkeys([k for k in swept if k in varying] + varying))
    for family, cfg in zip(measured["family"], measured["config"]):
        keys = keys_by_family[family]
        settings.append(", ".join(f"{k.split('.')[-1]}={_short(cfg.get(k))}" for k in keys))
        first = cfg.get(keys[0]) if keys else None
        sweep_values.append(float(first) if isinstance(first, (int, float)) and not isinstance(first, bool)
                            else np.nan)
    measured["setting"] = settings
    measured["sweep_value"] = sweep_values
    return measured


def _bounds(group: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Interval ends: the stored/bootstrap interval, else value ± std (spread over seeds), else NaN.

    A bias-corrected (basic) bootstrap interval may lie beside its point value, so intervals are
    drawn as segments from low to high rather than as symmetric error bars.
    """
    value = group["value"].to_numpy(dtype=float)
    std = group["std"].to_numpy(dtype=float)
    low = group["ci_low"].to_numpy(dtype=float)
    high = group["ci_high"].to_numpy(dtype=float)
    return np.where(np.isnan(low), value - std, low), np.where(np.isnan(high), value + std, high)


def plot_speed_quality(points: pd.DataFrame, protocol: str, metric: str, variant: str, path: Path) -> Path | None:
    """One figure: a panel per available x axis (seconds, NFE), one curve per generator family."""
    sel = points[(points["protocol"] == protocol) & (points["metric"] == metric) & (points["variant"] == variant)]
    axes_kinds = [k for k, (col, _) in X_AXES.items() if sel[col].notna().any()]
    if sel.empty or not axes_kinds:
        return None
    fig = Figure(figsize=(5.2 * len(axes_kinds), 4.0))
    hib = bool(sel["higher_is_better"].iloc[0])
    for i, kind in enumerate(axes_kinds):
        ax = fig.add_subplot(1, len(axes_kinds), i + 1)
        col, xlabel = X_AXES[kind]
        for family, group in sel[sel[col].notna()].groupby("family", sort=True):
            group = group.sort_values(["sweep_value", col], na_position="last")
            partial = group["status"] == "partial"
            (line,) = ax.plot(group[col], group["value"], marker="o", label=str(family))
            low, high = _bounds(group)
            has = ~np.isnan(low) & ~np.isnan(high)
            if has.any():
                xs = group[col].to_numpy(dtype=float)[has]
                ax.vlines(xs, low[has], high[has], color=line.get_color(), alpha=0.7)
                ax.scatter(np.concatenate([xs, xs]), np.concatenate([low[has], high[has]]), marker="_",
                           color=line.get_color(), s=60)
            if partial.any():
                ax.scatter(group.loc[partial, col], group.loc[partial, "value"], facecolors="white",
                           edgecolors="black", zorder=3, label=f"{family} (partial)")
            for x, y, text in zip(group[col], group["value"], group["setting"]):
                if text and math.isfinite(y):
                    ax.annotate(text, (x, y), textcoords="offset points", xytext=(4, 4), fontsize=7)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(column_label(metric, variant, hib))
        ax.set_xscale("log" if (sel[col].dropna() > 0).all() and sel[col].max() > 10 * sel[col].min() else "linear")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{protocol}: {column_label(metric, variant, hib)} vs speed", fontsize=10)
    return _save(fig, path)


def speed_quality_plots(frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    """One PNG per (protocol, metric, variant) that has generators with speeds."""
    points = speed_quality_points(frame)
    paths = []
    for (protocol, metric, variant), _ in points.groupby(["protocol", "metric", "variant"], sort=True):
        name = f"speed-{protocol}-{metric}-{variant}".replace("/", "__").replace(":", "_")
        path = plot_speed_quality(points, protocol, metric, variant, out_dir / f"{name}.png")
        if path is not None:
            paths.append(path)
    return paths


def plot_breakdown(breakdown: pd.DataFrame, protocol: str, metric: str, variant: str, path: Path,
                   higher_is_better: bool = True) -> Path | None:
    """Horizontal bars: one row per label, one bar per generator, labels sorted by the first generator."""
    sel = breakdown[(breakdown["protocol"] == protocol) & (breakdown["metric"] == metric)
                    & (breakdown["variant"] == variant)]
    if sel.empty:
        return None
    wide = sel.pivot_table(index="label", columns="generator", values="value", aggfunc="first")
    wide = wide.sort_values(wide.columns[0], ascending=not higher_is_better)
    n_labels, n_gens = wide.shape
    fig = Figure(figsize=(7.0, 1.2 + 0.22 * n_labels * max(1, n_gens) ** 0.5))
    ax = fig.add_subplot(1, 1, 1)
    height = 0.8 / n_gens
    pos = np.arange(n_labels)
    for j, gen in enumerate(wide.columns):
        ax.barh(pos + j * height, wide[gen].to_numpy(dtype=float), height=height, label=str(gen))
    ax.set_yticks(pos + 0.4 - height / 2)
    ax.set_yticklabels([str(x) for x in wide.index], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(column_label(metric, variant, higher_is_better))
    ax.grid(True, axis="x", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{protocol}: {metric}:{variant} per label", fontsize=10)
    return _save(fig, path)


def breakdown_plots(breakdown: pd.DataFrame, frame: pd.DataFrame, out_dir: Path) -> list[Path]:
    paths = []
    hib = {(p, m, v): bool(h) for p, m, v, h in
           zip(frame["protocol"], frame["metric"], frame["variant"], frame["higher_is_better"])}
    for (protocol, metric, variant), _ in breakdown.groupby(["protocol", "metric", "variant"], sort=True):
        name = f"labels-{protocol}-{metric}-{variant}".replace("/", "__").replace(":", "_")
        path = plot_breakdown(breakdown, protocol, metric, variant, out_dir / f"{name}.png",
                              hib.get((protocol, metric, variant), True))
        if path is not None:
            paths.append(path)
    return paths

"""Leaderboard: generators as rows, protocol / metric / variant as columns.

Measured rows come from the results store; reported rows (published numbers with their source)
are placed under the measured columns of the same protocol family and metric, in a section of their
own, and take no part in choosing the best value. Partial evaluations are marked and never bolded.
"""

from __future__ import annotations

import math

import pandas as pd

from evalkit.reports.published import normalise_metric, protocol_matches
from evalkit.reports.tables import Cell, Column, Section, Table, decimals_for, format_number

CELL_COLUMNS = [
    "section", "generator", "protocol", "metric", "variant", "higher_is_better", "value", "ci_low", "ci_high",
    "std", "interval", "n_seeds", "n_fake", "n_real", "n_done", "n_samples", "status", "comparable", "best",
    "weights_digest", "reference", "run_id",
]

MARK_NONCOMPARABLE = "†"
MARK_PARTIAL = "‡"


def measured_metric_key(metric: str, variant: str) -> str:
    """The published metric a measured (metric, variant) corresponds to (CLIP-FID is ``fid`` + a CLIP variant)."""
    key = normalise_metric(metric)
    if key == "fid" and "clip" in variant.lower():
        return "clipfid"
    return key


def _best_flags(cells: pd.DataFrame) -> pd.Series:
    best = pd.Series(False, index=cells.index)
    eligible = cells[(cells["section"] == "measured") & (cells["status"] == "final") & cells["value"].notna()]
    for _, group in eligible.groupby(["protocol", "metric", "variant"], sort=False):
        target = group["value"].max() if bool(group["higher_is_better"].iloc[0]) else group["value"].min()
        tol = 1e-12 * max(1.0, abs(target))
        best.loc[group.index[(group["value"] - target).abs() <= tol]] = True
    return best


def leaderboard_frame(measured: pd.DataFrame, published: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long-form leaderboard: one row per (section, generator, column) with value, interval, counts,
    status and a ``best`` flag; ``section`` is "measured" or "reported" (columns ``CELL_COLUMNS``)."""
    rows = []
    for rec in measured.to_dict("records"):
        rows.append({
            "section": "measured", "generator": rec["generator"], "protocol": rec["protocol"],
            "metric": rec["metric"], "variant": rec["variant"], "higher_is_better": bool(rec["higher_is_better"]),
            "value": rec["value"], "ci_low": rec["ci_low"], "ci_high": rec["ci_high"], "std": rec["std"],
            "interval": rec.get("interval"), "n_seeds": int(rec.get("n_seeds", 1) or 1),
            "n_fake": rec["n_fake"], "n_real": rec["n_real"], "n_done": rec["n_done"],
            "n_samples": rec["n_samples"], "status": rec["status"], "comparable": bool(rec["comparable"]),
            "weights_digest": rec["weights_digest"], "reference": "", "run_id": rec["run_id"],
        })
    columns = measured[["protocol", "metric", "variant", "higher_is_better"]].drop_duplicates(
        ["protocol", "metric", "variant"])
    if published is not None and not published.empty:
        for col in columns.to_dict("records"):
            key = measured_metric_key(col["metric"], col["variant"])
            match = published[[protocol_matches(col["protocol"], fam) and normalise_metric(m) == key
                               for fam, m in zip(published["protocol_family"], published["metric"])]]
            for rec in match.to_dict("records"):
                rows.append({
                    "section": "reported", "generator": rec["generator"], "protocol": col["protocol"],
                    "metric": col["metric"], "variant": col["variant"],
                    "higher_is_better": bool(col["higher_is_better"]), "value": rec["value"], "ci_low": None,
                    "ci_high": None, "std": None, "interval": None, "n_seeds": 0, "n_fake": None,
                    "n_real": None, "n_done": None, "n_samples": None, "status": "reported", "comparable": True,
                    "weights_digest": None, "reference": rec["reference"], "run_id": None,
                })
    cells = pd.DataFrame.from_records(rows, columns=CELL_COLUMNS)
    for col in ("value", "ci_low", "ci_high", "std"):
        cells[col] = pd.to_numeric(cells[col], errors="coerce").astype(float)
    cells["best"] = _best_flags(cells) if not cells.empty else pd.Series(dtype=bool)
    return cells


def wide_values(cells: pd.DataFrame) -> pd.DataFrame:
    """Values only: index (section, generator), columns MultiIndex (protocol, metric, variant)."""
    return cells.pivot_table(index=["section", "generator"], columns=["protocol", "metric", "variant"],
                             values="value", aggfunc="first", sort=False)


def column_label(metric: str, variant: str, higher_is_better: bool) -> str:
    arrow = "↑" if higher_is_better else "↓"
    name = metric.upper()
    return f"{name} ({variant}) {arrow}" if variant else f"{name} {arrow}"


def _n_note(rec: dict) -> str:
    if rec["section"] != "measured":
        return ""
    if rec["status"] == "partial" and rec["n_samples"]:
        return f"n={int(rec['n_done'])} of {int(rec['n_samples'])}"
    if rec["n_seeds"] and rec["n_seeds"] > 1:
        return f"{int(rec['n_seeds'])} seeds, n={int(rec['n_fake'])} each"
    if rec["n_real"]:
        return f"n={int(rec['n_fake'])}/{int(rec['n_real'])}"
    return f"n={int(rec['n_fake'])}"


def _detail(rec: dict, decimals: int) -> str:
    if rec["section"] != "measured":
        return ""
    if rec["n_seeds"] and rec["n_seeds"] > 1 and rec["std"] is not None and not math.isnan(rec["std"]):
        return f"± {format_number(rec['std'], decimals)}"
    if rec["ci_low"] is not None and not math.isnan(rec["ci_low"]):
        return f"[{format_number(rec['ci_low'], decimals)}, {format_number(rec['ci_high'], decimals)}]"
    if rec["std"] is not None and not math.isnan(rec["std"]):
        return f"± {format_number(rec['std'], decimals)}"
    return ""


def leaderboard_table(cells: pd.DataFrame, title: str = "Leaderboard") -> Table:
    """The renderable table of a ``leaderboard_frame`` (bold best, marks and footnotes)."""
    keys = list(dict.fromkeys(zip(cells["protocol"], cells["metric"], cells["variant"])))
    direction = {k: bool(h) for k, h in zip(zip(cells["protocol"], cells["metric"], cells["variant"]),
                                              cells["higher_is_better"])}
    # digits follow the measured values of a column (published ones may be of another scale)
    decimals = {k: decimals_for(list(g.loc[g["section"] == "measured", "value"]) or list(g["value"]))
                for k, g in cells.groupby(["protocol", "metric", "variant"])}
    columns = [Column(label=column_label(m, v, direction[(p, m, v)]), group=p) for p, m, v in keys]
    measured = cells[cells["section"] == "measured"]
    order = _row_order(measured, keys[0] if keys else None, direction)
    references = list(dict.fromkeys(r for r in cells.loc[cells["section"] == "reported", "reference"] if r))
    ref_mark = {ref: str(i) for i, ref in enumerate(references, start=1)}
    marks_used: set[str] = set()
    interval_kinds: set[str] = set()
    sections = []
    for name, title_text, generators in (
        ("measured", "Measured", order),
        ("reported", "Reported in papers (implementation not stated; not ranked)",
         list(dict.fromkeys(cells.loc[cells["section"] == "reported", "generator"]))),
    ):
        section = Section(title_text if references else "")
        part = cells[cells["section"] == name]
        for gen in generators:
            rows = part[part["generator"] == gen]
            row_refs = tuple(dict.fromkeys(ref_mark[r] for r in rows["reference"] if r))
            head = Cell(text=str(gen), marks=row_refs, title="; ".join(r for r in dict.fromkeys(rows["reference"]) if r))
            row_cells = []
            for key in keys:
                match = rows[(rows["protocol"] == key[0]) & (rows["metric"] == key[1]) & (rows["variant"] == key[2])]
                if match.empty:
                    row_cells.append(Cell(text="–"))
                    continue
                rec = match.iloc[0].to_dict()
                marks = []
                if name == "measured" and not rec["comparable"]:
                    marks.append(MARK_NONCOMPARABLE)
                if rec["status"] == "partial":
                    marks.append(MARK_PARTIAL)
                marks_used.update(marks)
                if rec.get("interval") and name == "measured" and rec["ci_low"] is not None \
                        and not math.isnan(rec["ci_low"]):
                    interval_kinds.add(str(rec["interval"]))
                row_cells.append(Cell(
                    text=format_number(rec["value"], decimals[key]), detail=_detail(rec, decimals[key]),
                    note=_n_note(rec), bold=bool(rec["best"]), marks=tuple(marks), sort_value=rec["value"],
                    title=f"weights {rec['weights_digest']}" if rec.get("weights_digest") else "",
                ))
            section.rows.append((head, row_cells))
        if section.rows:
            sections.append(section)
    notes = ["Bold: best measured final value per column (↑ higher is better, ↓ lower is better)."]
    if any(measured["n_real"].fillna(0) > 0):
        notes.append("n = generated / real samples.")
    for kind in sorted(interval_kinds):
        notes.append(f"Intervals: {kind}.")
    if MARK_NONCOMPARABLE in marks_used:
        notes.append(f"{MARK_NONCOMPARABLE} computed with detector weights other than the reference ones: "
                     "not comparable with published numbers.")
    if MARK_PARTIAL in marks_used:
        notes.append(f"{MARK_PARTIAL} partial: the evaluation has not finished (samples done of planned); "
                     "not final and not ranked.")
    for ref, mark in ref_mark.items():
        notes.append(f"{mark} {ref}")
    return Table(title=title, row_header="Generator", columns=columns, sections=sections, notes=notes)


def _row_order(measured: pd.DataFrame, first: tuple | None, direction: dict) -> list[str]:
    gens = list(dict.fromkeys(measured["generator"]))
    if first is None:
        return gens
    sel = measured[(measured["protocol"] == first[0]) & (measured["metric"] == first[1])
                   & (measured["variant"] == first[2])]
    value = dict(zip(sel["generator"], sel["value"]))
    partial = dict(zip(sel["generator"], sel["status"] == "partial"))
    sign = -1.0 if direction[first] else 1.0

    def key(gen: str) -> tuple:
        v = value.get(gen)
        missing = v is None or (isinstance(v, float) and math.isnan(v))
        return (partial.get(gen, True), missing, 0.0 if missing else sign * v)

    return sorted(gens, key=key)


def published_table(published: pd.DataFrame, table: str) -> Table:
    """One published table as printed in its source (for the report's reference section)."""
    part = published[published["table"] == table]
    if part.empty:
        raise KeyError(table)
    metrics = list(dict.fromkeys(part["metric"]))
    labels = dict(zip(part["metric"], part["metric_label"]))
    hib = dict(zip(part["metric"], part["higher_is_better"]))
    decimals = {m: decimals_for(list(part.loc[part["metric"] == m, "value"])) for m in metrics}
    columns = [Column(label=f"{labels[m]} {'↑' if hib[m] else '↓'}") for m in metrics]
    section = Section("")
    notes = [f"Source: {part['reference'].iloc[0]}."]
    for gen in dict.fromkeys(part["generator"]):
        rows = part[part["generator"] == gen]
        values = dict(zip(rows["metric"], rows["value"]))
        note = next((n for n in rows["notes"] if n), "")
        conf = rows["confidence"].iloc[0]
        marks: tuple[str, ...] = ()
        if note or conf != "paper":
            notes.append(f"{len(notes)} {gen}: " + "; ".join(x for x in (note, f"confidence: {conf}"
                                                                         if conf != "paper" else "") if x))
            marks = (str(len(notes) - 1),)
        section.rows.append((Cell(text=str(gen), marks=marks),
                             [Cell(text=format_number(values.get(m), decimals[m]), sort_value=values.get(m))
                              for m in metrics]))
    return Table(title=str(part["title"].iloc[0]), row_header="Method", columns=columns, sections=[section],
                 notes=notes)

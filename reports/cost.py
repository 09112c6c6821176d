"""Cost table: what each generator cost to train and costs to sample, next to its quality.

Training cost comes from the weights file the generator loaded (``evalkit train`` writes steps,
samples and wall time into the exported file's metadata; the generator's ``info()`` passes them to
every result row). Sampling cost is measured by the runner: generation seconds per video and
network evaluations per video. Nothing is recomputed here.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from evalkit.reports.tables import Cell, Column, Section, Table

COLUMNS = ("parameters", "train steps", "train samples", "train wall (min)", "s / video", "NFE / video")


def _number(value: Any, fmt: str) -> Cell:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return Cell(text="–")
    return Cell(text=format(value, fmt), sort_value=float(value))


def cost_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (generator, protocol) with parameters, training and sampling cost."""
    records = []
    measured = frame[frame["source"] == "measured"] if "source" in frame else frame
    for (gen, protocol), rows in measured.groupby(["generator", "protocol"], sort=False):
        rec = rows.iloc[0]
        info = (rec["details"] or {}).get("generator_info") or {}
        training = info.get("training") or {}
        wall = training.get("wall_s")
        records.append({
            "generator": gen, "protocol": protocol, "parameters": info.get("parameters"),
            "train_steps": training.get("steps"), "train_samples": training.get("samples"),
            "train_wall_min": wall / 60 if wall else None,
            "gen_seconds_per_video": rec.get("gen_seconds_per_video"), "nfe_per_video": rec.get("nfe_per_video"),
        })
    return pd.DataFrame.from_records(records)


def cost_table(costs: pd.DataFrame) -> Table | None:
    """The cost of the generators that report parameters or training (None when none does)."""
    if costs.empty or costs[["parameters", "train_steps"]].isna().all().all():
        return None
    multi_protocol = costs["protocol"].nunique() > 1
    section = Section("")
    for rec in costs.to_dict("records"):
        name = f"{rec['generator']} ({rec['protocol']})" if multi_protocol else str(rec["generator"])
        params = rec["parameters"]
        cells = [
            Cell(text=f"{params / 1e6:.2f}M", sort_value=float(params)) if params and math.isfinite(params) else Cell("–"),
            _number(rec["train_steps"], ".0f"), _number(rec["train_samples"], ".0f"),
            _number(rec["train_wall_min"], ".1f"), _number(rec["gen_seconds_per_video"], ".3f"),
            _number(rec["nfe_per_video"], ".0f"),
        ]
        section.rows.append((Cell(text=name), cells))
    notes = ["Training cost as recorded in each generator's weights file (steps, clips seen, wall time of "
             "the training run); sampling cost measured in this run (seconds per video on this run's device, "
             "network evaluations per video; guidance counts one evaluation per branch)."]
    return Table(title="Cost", row_header="Generator", columns=[Column(c) for c in COLUMNS], sections=[section],
                 notes=notes)

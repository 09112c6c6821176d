"""Run directories -> every report artefact (tables in md/csv/tex/html, plots, grids, one HTML file).

``build_report`` is what ``evalkit report`` calls; each step is a function of the modules next to
this one, so a notebook can call them one by one instead.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from evalkit.errors import InputError
from evalkit.reports.ablation import ablation_frame, ablation_keys, aggregate_seeds
from evalkit.reports.bootstrap import IntervalMethod, bootstrap_frame
from evalkit.reports.breakdown import breakdowns
from evalkit.reports.cost import cost_frame, cost_table
from evalkit.reports.features import load_samples
from evalkit.reports.grids import sample_grid
from evalkit.reports.html import render_html
from evalkit.reports.leaderboard import column_label, leaderboard_frame, leaderboard_table, published_table
from evalkit.reports.load import RunData, common_protocols, load_runs, protocol_slug, results_frame
from evalkit.reports.paired import paired_frame, paired_table
from evalkit.reports.plots import breakdown_plots, speed_quality_plots
from evalkit.reports.published import published_frame
from evalkit.reports.tables import (
    Cell,
    Column,
    Section,
    Table,
    decimals_for,
    format_number,
    to_latex,
    to_markdown,
)

FORMATS = ("md", "csv", "tex", "html")


@dataclasses.dataclass
class Report:
    """Everything a report shows, as data (frames and tables) plus the image files written."""

    runs: list[RunData]
    frame: pd.DataFrame
    cells: pd.DataFrame
    leaderboard: Table
    ablation: pd.DataFrame
    ablation_table: Table | None
    published: pd.DataFrame
    published_tables: list[Table]
    breakdown: pd.DataFrame
    speed_plots: list[Path]
    breakdown_plots: list[Path]
    grids: list[tuple[Path, str]]
    messages: list[str]
    files: list[Path] = dataclasses.field(default_factory=list)
    costs: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    cost_table: Table | None = None
    paired: pd.DataFrame = dataclasses.field(default_factory=pd.DataFrame)
    paired_table: Table | None = None

    @property
    def partial(self) -> pd.DataFrame:
        """Measured rows that are not final, with their counts."""
        return self.frame[self.frame["status"] == "partial"]


def parse_formats(text: str | Sequence[str]) -> list[str]:
    items = [t.strip() for t in (text.split(",") if isinstance(text, str) else text) if t.strip()]
    unknown = [t for t in items if t not in FORMATS]
    if unknown or not items:
        raise InputError(f"--format: expected a comma-separated subset of {','.join(FORMATS)}, got {text!r}")
    return list(dict.fromkeys(items))


def ablation_table(table: pd.DataFrame, frame: pd.DataFrame) -> Table | None:
    """Renderable ablation table (settings columns left, metric columns right, best bold per column)."""
    if table.empty:
        return None
    keys = ablation_keys(table)
    metric_cols = [c for c in table.columns if c not in keys]
    hib = {f"{p} | {m}:{v}": bool(h) for p, m, v, h in
           zip(frame["protocol"], frame["metric"], frame["variant"], frame["higher_is_better"])}
    status = {(g, f"{p} | {m}:{v}"): s for g, p, m, v, s in
              zip(frame["generator"], frame["protocol"], frame["metric"], frame["variant"], frame["status"])}
    columns = [Column(label=k, group="setting", align="l") for k in keys]
    for col in metric_cols:
        protocol, _, mv = col.partition(" | ")
        metric, _, variant = mv.partition(":")
        columns.append(Column(label=column_label(metric, variant, hib.get(col, False)), group=protocol))
    best = {}
    for col in metric_cols:
        final = [v for g, v in table[col].items() if status.get((g, col)) == "final" and pd.notna(v)]
        if final:
            best[col] = max(final) if hib.get(col, False) else min(final)
    section = Section("")
    for gen in table.index:
        cells = []
        for k in keys:
            setting = table.at[gen, k]
            missing = setting is None or (isinstance(setting, float) and pd.isna(setting))
            numeric = isinstance(setting, (int, float)) and not isinstance(setting, bool)
            cells.append(Cell(text="–" if missing else str(setting), sort_value=setting if numeric else None))
        for col in metric_cols:
            value = table.at[gen, col]
            dec = decimals_for(list(table[col]))
            partial = status.get((gen, col)) == "partial"
            cells.append(Cell(text=format_number(value, dec), sort_value=value,
                              bold=bool(col in best and not partial and pd.notna(value) and value == best[col]),
                              marks=("‡",) if partial else ()))
        section.rows.append((Cell(text=str(gen)), cells))
    notes = ["Settings columns are the configuration fields that differ between the generators."]
    if any("‡" in c.marks for _, cells in section.rows for c in cells):
        notes.append("‡ partial: the evaluation has not finished; not final and not ranked.")
    return Table(title="Ablation", row_header="Generator", columns=columns, sections=[section], notes=notes)


def runs_table(runs: list[RunData], frame: pd.DataFrame) -> Table:
    columns = [Column("path", align="l"), Column("status", align="l"), Column("code", align="l"),
               Column("config", align="l"), Column("created", align="l")]
    section = Section("")
    for run in runs:
        rows = frame[frame["run_id"] == run.run_id]
        partial = int((rows["status"] == "partial").sum())
        status = "complete" if run.complete and not partial else f"partial ({partial} of {len(rows)} results)"
        code = str(run.manifest.get("code_version", rows["code_version"].iloc[0] if len(rows) else ""))
        chash = str(run.manifest.get("config_hash", rows["config_hash"].iloc[0] if len(rows) else ""))
        section.rows.append((Cell(text=run.run_id), [
            Cell(text=str(run.path)), Cell(text=status), Cell(text=code), Cell(text=chash[:12]),
            Cell(text=str(run.manifest.get("created", ""))),
        ]))
    return Table(title="Runs", row_header="Run", columns=columns, sections=[section])


def partial_warnings(frame: pd.DataFrame) -> list[str]:
    out = []
    part = frame[frame["status"] == "partial"].drop_duplicates(["run_id", "generator", "protocol"])
    for rec in part.to_dict("records"):
        out.append(f"Partial: {rec['generator']} on {rec['protocol']} (run {rec['run_id']}) has "
                   f"{int(rec['n_done'])} of {int(rec['n_samples'])} samples; its numbers are not final.")
    return out


def build_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
    bootstrap_rounds: int = 0,
    seed: int = 0,
    level: float = 0.95,
    method: IntervalMethod = "basic",
    published_tables: Sequence[str] | None = None,
    grid_videos: int = 4,
    grid_frames: int = 8,
    title: str = "t2v-evalkit report",
    paired_baseline: str | None = None,
    paired_rounds: int = 1000,
    paired_with: Sequence[str] | None = None,
    progress: bool = False,
) -> Report:
    """Read the runs, compute what the options ask for and write the report files into ``out_dir``."""
    formats = parse_formats(list(formats))
    runs = load_runs(list(run_dirs))
    common_protocols(runs)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    messages: list[str] = []
    frame = results_frame(runs)
    if bootstrap_rounds:
        frame, msgs = bootstrap_frame(frame, rounds=bootstrap_rounds, seed=seed, level=level, method=method,
                                      progress=progress)
        messages.extend(msgs)
    paired = pd.DataFrame()
    if paired_baseline:
        # before seed aggregation: pairs are rows of one plan, and the features belong to those rows
        paired, msgs = paired_frame(frame, paired_baseline, rounds=paired_rounds, seed=seed, level=level,
                                    method=method, compared=paired_with, progress=progress)
        messages.extend(msgs)
    frame = aggregate_seeds(frame)
    published = published_frame(list(published_tables) if published_tables is not None else None)
    cells = leaderboard_frame(frame, published)
    board = leaderboard_table(cells)
    ablation = ablation_frame(frame)
    abl_table = ablation_table(ablation, frame)
    used_tables = [t for t in dict.fromkeys(published["table"]) if
                   any(r for r in cells.loc[cells["section"] == "reported", "reference"]
                       if r == published.loc[published["table"] == t, "reference"].iloc[0])]
    pub_tables = [published_table(published, t) for t in used_tables]
    breakdown, msgs = breakdowns(frame)
    messages.extend(msgs)
    images = out / "images"
    speed = speed_quality_plots(frame, images)
    bars = breakdown_plots(breakdown, frame, images) if not breakdown.empty else []
    grids = _grids(runs, frame, images, grid_videos, grid_frames)
    report = Report(runs=runs, frame=frame, cells=cells, leaderboard=board, ablation=ablation,
                    ablation_table=abl_table, published=published, published_tables=pub_tables,
                    breakdown=breakdown, speed_plots=speed, breakdown_plots=bars, grids=grids, messages=messages)
    report.costs = cost_frame(frame)
    report.cost_table = cost_table(report.costs)
    report.paired = paired
    report.paired_table = paired_table(paired)
    report.files = write_report(report, out, formats, title)
    return report


def _grids(runs: list[RunData], frame: pd.DataFrame, out: Path, n_videos: int, n_frames: int) -> list[tuple[Path, str]]:
    grids = []
    if n_videos < 1:
        return grids
    for rec in frame.drop_duplicates(["run_dir", "label", "protocol"]).to_dict("records"):
        samples = load_samples(rec["run_dir"], rec["label"], rec["protocol"])
        if samples is None:
            continue
        videos, prompts = samples
        caption = f"{rec['generator']} on {rec['protocol']}"
        name = f"samples-{rec['run_id']}-{rec['label']}-{protocol_slug(rec['protocol'])}.png".replace("/", "__")
        grids.append((sample_grid(videos, prompts, out / name, max_videos=n_videos, n_frames=n_frames,
                                  title=caption), caption))
    return grids


def write_report(report: Report, out: Path, formats: Sequence[str], title: str) -> list[Path]:
    files: list[Path] = []
    tables = [report.leaderboard] + [t for t in (report.ablation_table, report.paired_table, report.cost_table) if t]
    if "md" in formats:
        parts = [f"# {title}\n"] + [f"> {w}\n" for w in partial_warnings(report.frame)]
        parts += [to_markdown(t) for t in tables + report.published_tables]
        files.append(_write(out / "report.md", "\n".join(parts)))
    if "csv" in formats:
        files.append(_write(out / "leaderboard.csv", report.cells.to_csv(index=False)))
        results = report.frame.drop(columns=["config", "params", "details", "seed_values"], errors="ignore")
        files.append(_write(out / "results.csv", results.to_csv(index=False)))
        if not report.ablation.empty:
            files.append(_write(out / "ablation.csv", report.ablation.to_csv()))
        if not report.breakdown.empty:
            files.append(_write(out / "breakdown.csv", report.breakdown.to_csv(index=False)))
        if report.cost_table is not None:
            files.append(_write(out / "cost.csv", report.costs.to_csv(index=False)))
        if not report.paired.empty:
            files.append(_write(out / "paired.csv", report.paired.to_csv(index=False)))
    if "tex" in formats:
        files.append(_write(out / "leaderboard.tex", to_latex(report.leaderboard)))
        if report.ablation_table:
            files.append(_write(out / "ablation.tex", to_latex(report.ablation_table)))
        if report.cost_table:
            files.append(_write(out / "cost.tex", to_latex(report.cost_table)))
        if report.paired_table:
            files.append(_write(out / "paired.tex", to_latex(report.paired_table)))
    if "html" in formats:
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        sections = [
            ("Leaderboard", [report.leaderboard]),
            ("Ablation", [report.ablation_table] if report.ablation_table else []),
            ("Paired differences", [report.paired_table] if report.paired_table else []),
            ("Cost", [report.cost_table] if report.cost_table else []),
            ("Speed vs quality", [(p, _caption(p, "speed-", "quality against generation cost, one curve "
                                                "per generator family")) for p in report.speed_plots]),
            ("Per-label breakdown", [(p, _caption(p, "labels-", "value per plan label"))
                                     for p in report.breakdown_plots]),
            ("Samples", list(report.grids)),
            ("Published numbers", list(report.published_tables)),
            ("Notes", [*report.messages, f"Generated {created}."]),
        ]
        text = render_html(title, summary=runs_table(report.runs, report.frame),
                           warnings=partial_warnings(report.frame), sections=sections)
        files.append(_write(out / "report.html", text))
    return files


def _caption(path: Path, prefix: str, text: str) -> str:
    return f"{path.stem.removeprefix(prefix).replace('__', '/')}: {text}"


def _write(path: Path, text: str) -> Path:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
    return path

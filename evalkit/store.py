"""The results store: one SQLite file per run directory, one row per
(generator, protocol, metric, variant).

Rows are written only by rank 0 after every sample of a (generator, protocol) pair is done; a row
whose ``status`` is ``partial`` comes from a run that was asked for an interim report and is never
shown as final.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from evalkit.errors import RunDirError

RESULTS_FILE = "results.sqlite"

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id          TEXT NOT NULL,
    generator       TEXT NOT NULL,
    protocol        TEXT NOT NULL,
    metric          TEXT NOT NULL,
    variant         TEXT NOT NULL,
    value           REAL,
    std             REAL,
    ci_low          REAL,
    ci_high         REAL,
    n_real          INTEGER NOT NULL,
    n_fake          INTEGER NOT NULL,
    higher_is_better INTEGER NOT NULL,
    detector        TEXT,
    weights_digest  TEXT,
    comparable      INTEGER NOT NULL,
    config_hash     TEXT NOT NULL,
    code_version    TEXT NOT NULL,
    wall_time_s     REAL,
    started         TEXT,
    finished        TEXT,
    status          TEXT NOT NULL,
    details         TEXT NOT NULL,
    PRIMARY KEY (run_id, generator, protocol, metric, variant)
);
"""


@dataclasses.dataclass
class ResultRow:
    run_id: str
    generator: str
    protocol: str
    metric: str
    variant: str
    value: float | None
    n_real: int
    n_fake: int
    higher_is_better: bool
    config_hash: str
    code_version: str
    status: str = "final"  # "final" or "partial"
    std: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    detector: str | None = None
    weights_digest: str | None = None
    comparable: bool = True
    wall_time_s: float | None = None
    started: str | None = None
    finished: str | None = None
    #: JSON-able extras: square-root method, warnings, generation seconds per video, nfe, skipped files...
    details: dict[str, Any] = dataclasses.field(default_factory=dict)


COLUMNS = [f.name for f in dataclasses.fields(ResultRow)]


def connect(path: str | Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path))
    conn.executescript(SCHEMA)
    return conn


def write_results(path: str | Path, rows: Iterable[ResultRow]) -> None:
    """Insert or replace rows in one transaction (all or nothing)."""
    conn = connect(path)
    try:
        with conn:
            for row in rows:
                data = dataclasses.asdict(row)
                data["details"] = json.dumps(data["details"], sort_keys=True, default=str)
                data["higher_is_better"] = int(data["higher_is_better"])
                data["comparable"] = int(data["comparable"])
                cols = ", ".join(COLUMNS)
                marks = ", ".join(f":{c}" for c in COLUMNS)
                conn.execute(f"INSERT OR REPLACE INTO results ({cols}) VALUES ({marks})", data)
    finally:
        conn.close()


def read_results(path: str | Path) -> list[ResultRow]:
    """Read every row; a missing or corrupted file raises ``RunDirError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise RunDirError(f"{path}: no results file (the run has not finished any evaluation yet)")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            cursor = conn.execute(f"SELECT {', '.join(COLUMNS)} FROM results")
            raw = cursor.fetchall()
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise RunDirError(f"{path}: not a readable results database ({exc})") from None
    rows = []
    for values in raw:
        data = dict(zip(COLUMNS, values))
        data["higher_is_better"] = bool(data["higher_is_better"])
        data["comparable"] = bool(data["comparable"])
        try:
            data["details"] = json.loads(data["details"] or "{}")
        except json.JSONDecodeError as exc:
            raise RunDirError(f"{path}: corrupted 'details' field in row {data['metric']}:{data['variant']} ({exc})") from None
        rows.append(ResultRow(**data))
    return rows

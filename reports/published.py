"""Published numbers (``reports/data/published.yaml``) as "reported" rows of a leaderboard.

Reported rows carry their source and are kept apart from measured rows: they are never ranked
together, never bolded, and every renderer prints them in their own section.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from evalkit.errors import ConfigError

PUBLISHED_FILE = Path(__file__).parent / "data" / "published.yaml"
CONFIDENCE = ("paper", "pages", "unverified")
PUBLISHED_COLUMNS = ["table", "title", "reference", "protocol_family", "generator", "metric", "metric_label", "value",
                     "higher_is_better", "confidence", "notes", "source"]


def normalise_metric(name: str) -> str:
    """Metric names compared without case, '-' or '_' (``clip_fid`` == ``CLIP-FID``)."""
    return name.lower().replace("-", "").replace("_", "")


def load_published(path: str | Path = PUBLISHED_FILE) -> dict[str, dict[str, Any]]:
    """The tables of the published-numbers file, validated."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read published numbers ({exc})", file=str(path)) from None
    tables = (data or {}).get("tables")
    if not isinstance(tables, dict) or not tables:
        raise ConfigError("expected a non-empty mapping 'tables'", file=str(path), path="tables")
    for key, table in tables.items():
        where = f"tables.{key}"
        for field in ("title", "source", "protocol", "metrics", "rows"):
            if field not in table:
                raise ConfigError(f"missing field '{field}'", file=str(path), path=where)
        for metric, spec in table["metrics"].items():
            if not isinstance(spec, dict) or not isinstance(spec.get("higher_is_better"), bool):
                raise ConfigError("expected {higher_is_better: bool, label: str}", file=str(path),
                                  path=f"{where}.metrics.{metric}")
        for i, row in enumerate(table["rows"]):
            rpath = f"{where}.rows[{i}]"
            if not isinstance(row.get("method"), str) or not isinstance(row.get("values"), dict):
                raise ConfigError("expected 'method' (string) and 'values' (mapping)", file=str(path), path=rpath)
            for metric, value in row["values"].items():
                if metric not in table["metrics"]:
                    raise ConfigError(f"metric '{metric}' is not declared in {where}.metrics", file=str(path),
                                      path=f"{rpath}.values")
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise ConfigError(f"expected a number, got {value!r}", file=str(path),
                                      path=f"{rpath}.values.{metric}")
            if row.get("confidence", "paper") not in CONFIDENCE:
                raise ConfigError(f"confidence must be one of {', '.join(CONFIDENCE)}", file=str(path),
                                  path=f"{rpath}.confidence")
    return tables


def published_frame(tables: list[str] | None = None, path: str | Path = PUBLISHED_FILE) -> pd.DataFrame:
    """One row per (table, method, metric): columns table, title, reference, protocol_family, generator,
    metric, value, higher_is_better, confidence, notes, source (always "reported").

    ``tables`` selects table keys; by default the tables marked ``default: true`` (Snap Video 4 and 5).
    """
    all_tables = load_published(path)
    if tables is None:
        tables = [k for k, t in all_tables.items() if t.get("default", False)]
    unknown = [t for t in tables if t not in all_tables]
    if unknown:
        raise ConfigError(f"unknown published table(s) {', '.join(unknown)}; known: {', '.join(all_tables)}",
                          file=str(path))
    records = []
    for key in tables:
        table = all_tables[key]
        for row in table["rows"]:
            for metric, value in row["values"].items():
                records.append({
                    "table": key, "title": table["title"], "reference": table["source"],
                    "protocol_family": table["protocol"], "generator": row["method"], "metric": metric,
                    "metric_label": table["metrics"][metric].get("label", metric),
                    "value": float(value), "higher_is_better": table["metrics"][metric]["higher_is_better"],
                    "confidence": row.get("confidence", "paper"), "notes": row.get("notes", ""),
                    "source": "reported",
                })
    return pd.DataFrame.from_records(records, columns=PUBLISHED_COLUMNS)


def protocol_matches(protocol: str, family: str) -> bool:
    """A measured protocol belongs to a published family when it is the family or lies under it."""
    return protocol == family or protocol.startswith(family.rstrip("/") + "/")

"""Ablation tables from configuration differences, and repeated-seed aggregation.

Each measured row carries its evaluation settings as dotted keys (``generator``, ``params.*``,
``protocol.*``, ``run.*``; see ``evalkit.reports.load.row_config``). The keys whose values differ
between generators become the ablation table's columns, so a sweep over steps or guidance needs no
table specification. Rows that differ only in seed keys are repeats of one setting and are
averaged (mean ± standard deviation over seeds).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pandas as pd

from evalkit.reports.bootstrap import seed_spread

SEED_KEYS = ("seed", "seeds", "base_seed")


def is_seed_key(key: str) -> bool:
    return key.rsplit(".", 1)[-1] in SEED_KEYS


def _frozen(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def varying_keys(configs: list[dict[str, Any]], *, include_seeds: bool = False) -> list[str]:
    """Keys whose value is not the same in every config (a key missing from some counts as differing)."""
    keys: list[str] = []
    for config in configs:
        keys.extend(k for k in config if k not in keys)
    out = []
    for key in keys:
        if not include_seeds and is_seed_key(key):
            continue
        values = {_frozen(config.get(key, "<unset>")) for config in configs}
        if len(values) > 1:
            out.append(key)
    return out


SEPARATORS = "-_ .:/="


def _common_label(labels: list[str]) -> str:
    """The shared part of repeat labels, cut at a separator (``fit-s0``, ``fit-s1`` -> ``fit``)."""
    prefix = labels[0]
    for label in labels[1:]:
        while not label.startswith(prefix):
            prefix = prefix[:-1]
    whole = all(len(label) == len(prefix) or label[len(prefix)] in SEPARATORS for label in labels)
    if not whole and any(ch in SEPARATORS for ch in prefix):
        prefix = prefix[: max(prefix.rfind(ch) for ch in SEPARATORS)]
    return prefix.rstrip(SEPARATORS)


def _without_seed(label: str) -> str:
    """Drop seed items from a sweep label: ``fit[steps=8,seed=1]`` -> ``fit[steps=8]``."""
    match = re.fullmatch(r"(.*)\[(.*)\]", label)
    if not match:
        return label
    items = [item for item in match.group(2).split(",") if not is_seed_key(item.partition("=")[0].strip())]
    return f"{match.group(1)}[{','.join(items)}]" if items else match.group(1)


def aggregate_seeds(frame: pd.DataFrame) -> pd.DataFrame:
    """Collapse rows that differ only in seed settings into one row per setting.

    An aggregated row has ``value`` = mean over seeds, ``std`` = standard deviation over seeds,
    ``n_seeds`` and ``seed_values``; its bootstrap interval is dropped (the spread over seeds replaces it)
    and it is partial if any repeat is. Rows without repeats get ``n_seeds`` = 1.
    """
    frame = frame.copy()
    frame["n_seeds"] = 1
    frame["seed_values"] = None
    if frame.empty or "config" not in frame:
        return frame
    keys = [
        (_frozen({k: v for k, v in cfg.items() if not is_seed_key(k)}), p, m, v)
        for cfg, p, m, v in zip(frame["config"], frame["protocol"], frame["metric"], frame["variant"])
    ]
    frame["_group"] = keys
    out = []
    for _, group in frame.groupby("_group", sort=False):
        seeds = {_frozen({k: v for k, v in cfg.items() if is_seed_key(k)}) for cfg in group["config"]}
        if len(group) == 1 or len(seeds) < len(group):
            out.append(group)
            continue
        first = group.iloc[0].copy()
        spread = seed_spread(list(group["value"]))
        labels = list(dict.fromkeys(_without_seed(x) for x in group["label"]))
        first["generator"] = (labels[0] if len(labels) == 1 else _common_label(labels)) or first["generator_name"]
        first["value"] = spread.mean
        first["std"] = spread.std
        first["ci_low"] = first["ci_high"] = None
        first["interval"] = "seeds"
        first["n_seeds"] = spread.n
        first["seed_values"] = spread.values
        first["status"] = "partial" if (group["status"] == "partial").any() else "final"
        first["comparable"] = bool(group["comparable"].all())
        first["n_done"] = int(group["n_done"].sum())
        first["n_samples"] = int(group["n_samples"].sum())
        for col in ("gen_seconds_per_video", "nfe_per_video", "metric_seconds"):
            first[col] = group[col].mean()
        first["config"] = {k: v for k, v in first["config"].items() if not is_seed_key(k)}
        out.append(first.to_frame().T)
    result = pd.concat(out, ignore_index=True).drop(columns="_group")
    for col in ("value", "std", "ci_low", "ci_high", "gen_seconds_per_video", "nfe_per_video", "metric_seconds"):
        result[col] = pd.to_numeric(result[col], errors="coerce").astype(float)
    return result


def ablation_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Generators as rows; the settings that differ between them, then one value column per
    ``protocol | metric:variant``. Returns an empty frame when no setting differs."""
    measured = frame[frame["source"] == "measured"]
    if measured.empty:
        return pd.DataFrame()
    per_gen: dict[str, dict[str, Any]] = {}
    for gen, cfg in zip(measured["generator"], measured["config"]):
        per_gen.setdefault(gen, cfg)
    keys = varying_keys(list(per_gen.values()))
    if not keys:
        return pd.DataFrame()
    settings = pd.DataFrame([{k: cfg.get(k) for k in keys} for cfg in per_gen.values()],
                            index=pd.Index(list(per_gen)), columns=keys)
    names = measured["protocol"] + " | " + measured["metric"] + ":" + measured["variant"]
    values = measured.assign(column=names).pivot_table(
        index="generator", columns="column", values="value", aggfunc="first", sort=False
    )
    table = settings.join(values)
    table.columns.name = None
    table.index.name = None
    return table.sort_values(keys, kind="stable", key=_sort_key)


def _sort_key(series: pd.Series) -> pd.Series:
    numeric = pd.to_numeric(series, errors="coerce")
    if numeric.notna().all():
        return numeric
    return series.astype(str)


def ablation_keys(table: pd.DataFrame) -> list[str]:
    """The settings columns of an ``ablation_frame`` (the others are metric values)."""
    return [c for c in table.columns if " | " not in c]

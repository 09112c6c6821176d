"""Per-label breakdowns (per-class CLIPSIM on UCF-101, per-attribute scores on shapes).

Where a protocol's sample plan gives each sample a label, metrics that need no real set are
recomputed on the samples of each label from the stored per-sample features. Metrics that compare
with a real set are left out: a per-class distance would need a per-class real set.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from evalkit.errors import EvalkitError
from evalkit.registry import METRICS
from evalkit.reports.bootstrap import feed
from evalkit.reports.features import load_fake_features, load_fake_indices, load_plan

BREAKDOWN_COLUMNS = ["generator", "protocol", "metric", "variant", "label", "value", "n"]


def label_breakdown(
    run_dir: str, generator: str, protocol: str, metric: str, *, min_samples: int = 1
) -> pd.DataFrame:
    """Metric value per plan label for one (generator, protocol); empty when the plan has no labels."""
    cls = METRICS.get(metric)
    if cls.uses_real:
        raise EvalkitError(f"{metric}: compares with a real set, so it has no per-label breakdown")
    plan = load_plan(run_dir, protocol)
    labels = {int(s["index"]): s.get("label") for s in plan}
    if not any(v is not None for v in labels.values()):
        return pd.DataFrame(columns=BREAKDOWN_COLUMNS)
    feats = load_fake_features(run_dir, generator, protocol, cls.detector)
    index = load_fake_indices(run_dir, generator, protocol)
    sample_labels = np.array([str(labels.get(int(i))) for i in index], dtype=object)
    name, _, variant = metric.partition(":")
    rows = []
    for label in sorted(set(sample_labels) - {"None"}):
        mask = sample_labels == label
        if mask.sum() < min_samples:
            continue
        instance = cls()
        feed(instance, feats[mask], real=False)
        rows.append({"generator": generator, "protocol": protocol, "metric": name, "variant": variant,
                     "label": label, "value": float(instance.compute().value), "n": int(mask.sum())})
    return pd.DataFrame.from_records(rows, columns=BREAKDOWN_COLUMNS)


def breakdowns(frame: pd.DataFrame, metrics: tuple[str, ...] = ("clipsim",)) -> tuple[pd.DataFrame, list[str]]:
    """Breakdowns of the measured rows of ``metrics`` (names without variant; per-class CLIPSIM by default);
    messages say what was skipped and why."""
    import evalkit.datasets  # noqa: F401  (registers dataset-specific metrics such as the shapes ones)

    parts, messages = [], []
    measured = frame[frame["source"] == "measured"]
    for rec in measured.drop_duplicates(["run_dir", "label", "protocol", "metric", "variant"]).to_dict("records"):
        full = f"{rec['metric']}:{rec['variant']}" if rec["variant"] else rec["metric"]
        if rec["metric"] not in metrics or full not in METRICS or METRICS.get(full).uses_real:
            continue
        try:
            part = label_breakdown(rec["run_dir"], rec["label"], rec["protocol"], full)
        except EvalkitError as exc:
            messages.append(f"{rec['generator']} / {rec['protocol']} / {full}: no per-label breakdown ({exc})")
            continue
        if not part.empty:
            part["generator"] = rec["generator"]
            parts.append(part)
    if not parts:
        return pd.DataFrame(columns=BREAKDOWN_COLUMNS), messages
    return pd.concat(parts, ignore_index=True), messages

"""The metric sanity suite: the oracle and its controlled degradations, and what each metric must do.

Expectations (checked by ``evalkit sanity``; asserted in CI on the shapes protocol):
- every Fréchet-type metric (lower is better) is lowest for the oracle;
- shuffled and frozen frames raise FVD clearly (by ``fvd_factor`` over the oracle) while frame-level
  FID moves much less than FVD does (relative change below ``fid_vs_fvd`` of FVD's);
- swapped captions lower CLIPSIM;
- additive noise is monotone in its level for every metric.

A degradation may tie with the oracle within ``tie_tolerance`` (relative): a detector can be blind
to a change below its resolution (the shapes video network averages frame pairs and does not see
noise of level 0.05), and at a few hundred samples two such sets differ by sampling noise alone.
What the checks refuse is a degradation that scores clearly better than the real clips.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from evalkit.runconfig import GeneratorEntry, RunConfig
from evalkit.store import ResultRow

NOISE_LEVELS = (0.05, 0.12, 0.25)


def sanity_config(protocol: str, samples: int | None, batch_size: int = 16) -> RunConfig:
    overrides = {protocol: [f"num_samples={samples}", f"num_real={samples}"]} if samples else {}
    gens = [
        GeneratorEntry("oracle"),
        GeneratorEntry("oracle-frozen"),
        GeneratorEntry("oracle-shuffled"),
        GeneratorEntry("oracle-noise", sweep={"level": list(NOISE_LEVELS)}),
        GeneratorEntry("oracle-blur", params={"sigma": 1.5}),
        GeneratorEntry("oracle-colour-shift", params={"hue": 0.25}),
        GeneratorEntry("oracle-caption-swap"),
    ]
    return RunConfig(generators=gens, protocols=[protocol], name="sanity", protocol_overrides=overrides,
                     batch_size=batch_size, chunk_size=64, keep_samples=4)


@dataclasses.dataclass
class Check:
    description: str
    passed: bool
    detail: str


def _by(rows: list[ResultRow]) -> dict[tuple[str, str], ResultRow]:
    return {(r.generator, f"{r.metric}:{r.variant}" if r.variant else r.metric): r for r in rows}


def check_expectations(rows: list[ResultRow], fvd_factor: float = 2.0, fid_vs_fvd: float = 0.5,
                       tie_tolerance: float = 0.05) -> list[Check]:
    by = _by([r for r in rows if "@" not in r.protocol])
    metrics = sorted({m for _, m in by})
    checks: list[Check] = []

    def val(gen: str, metric: str) -> float | None:
        row = by.get((gen, metric))
        return None if row is None else row.value

    for m in metrics:
        family = m.split(":")[0]
        oracle = val("oracle", m)
        if oracle is None:
            continue
        row = by[("oracle", m)]
        better = (lambda a, b: a > b) if row.higher_is_better else (lambda a, b: a < b)

        def not_worse(a: float, b: float, better=better) -> bool:
            """``a`` (closer to the real clips) is better than ``b``, or ties within the tolerance."""
            return better(a, b) or abs(a - b) <= tie_tolerance * max(abs(a), abs(b), 1e-12)
        if family in ("fvd", "fid", "kid", "clip-fid"):
            others = {g: v for (g, mm), r in by.items() if mm == m and g != "oracle" and (v := r.value) is not None
                      and not g.startswith("oracle-caption-swap")}
            worst_ok = all(not_worse(oracle, v) for v in others.values())
            checks.append(Check(f"{m}: the oracle is the best of all degradations (ties within {tie_tolerance:.0%})", worst_ok,
                                f"oracle {oracle:.4g}; " + ", ".join(f"{g} {v:.4g}" for g, v in others.items())))
        if family == "fvd":
            for g in ("oracle-shuffled", "oracle-frozen"):
                v = val(g, m)
                if v is not None:
                    checks.append(Check(f"{m}: {g} raises FVD by >= {fvd_factor}x the oracle's",
                                        v >= fvd_factor * max(oracle, 1e-12), f"{v:.4g} vs oracle {oracle:.4g}"))
        if family in ("clipsim",):
            v = val("oracle-caption-swap", m)
            if v is not None:
                checks.append(Check(f"{m}: swapped captions lower CLIPSIM", v < oracle, f"{v:.4g} vs oracle {oracle:.4g}"))
        noise = [val(f"oracle-noise[level={lv}]", m) for lv in NOISE_LEVELS]
        if all(v is not None for v in noise):
            seq = [oracle, *noise] if family not in ("clipsim", "is") else noise
            mono = all(not_worse(a, b) for a, b in zip(seq, seq[1:])) and better(seq[0], seq[-1])
            checks.append(Check(f"{m}: monotone in the noise level {NOISE_LEVELS} (ties within {tie_tolerance:.0%})", mono,
                                " -> ".join(f"{v:.4g}" for v in seq)))
    fvd = [m for m in metrics if m.startswith("fvd:")]
    fid = [m for m in metrics if m.startswith("fid:")]
    for mv in fvd:
        for mf in fid:
            o_v, s_v, o_f, s_f = val("oracle", mv), val("oracle-shuffled", mv), val("oracle", mf), val("oracle-shuffled", mf)
            if None in (o_v, s_v, o_f, s_f):
                continue
            rel_v = (s_v - o_v) / max(abs(o_v), 1e-12)
            rel_f = abs(s_f - o_f) / max(abs(o_f), 1e-12)
            checks.append(Check(f"{mf} barely moves under shuffled frames while {mv} rises",
                                rel_f < fid_vs_fvd * rel_v, f"relative change FID {rel_f:.3g} vs FVD {rel_v:.3g}"))
    return checks


def fewer_samples_config(protocol: str, samples: int, batch_size: int = 16) -> RunConfig:
    """The oracle with a quarter of the generated samples: shows each metric's small-sample bias."""
    few = max(8, samples // 4)
    return RunConfig(generators=[GeneratorEntry("oracle", label=f"oracle-n{few}")], protocols=[protocol],
                     name="sanity-fewer", protocol_overrides={protocol: [f"num_samples={few}", f"num_real={samples}"]},
                     batch_size=batch_size, chunk_size=64, keep_samples=0)


def format_checks(checks: list[Check]) -> str:
    lines = []
    for c in checks:
        lines.append(f"[{'PASS' if c.passed else 'FAIL'}] {c.description}: {c.detail}")
    return "\n".join(lines)


def default_out(protocol: str) -> Path:
    return Path("runs") / ("sanity-" + protocol.replace("/", "__"))

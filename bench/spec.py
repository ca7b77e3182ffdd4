# Strategy: what every benchmark shares, as data that lands in results.json.
#
#   - a Variant is one twin of a measurement: a name, a column label, and the
#     environment it adds to the server and to the clients (durable or not;
#     TLS or not: bench.tls). A twin is one more entry in a runner's VARIANTS;
#   - a Ratio divides two figures of the same run ("variant.figure", or
#     "floor.figure" for the ingest's in-process floor);
#   - a Target bounds one figure ("variant.figure" or "ratio.key").
#
# `run_variants` measures every variant once per run, reversing their order
# from run to run so that a drift of the machine does not favour one side, and
# computes the ratios inside each run. A measurement is a flat dict of plain
# numbers and flags with an "ok" entry (the run was correct).
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

Record = dict[str, Any]


@dataclass(frozen=True)
class Variant:
    name: str
    label: str
    server_env: Mapping[str, str] = field(default_factory=dict)
    client_env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Ratio:
    key: str
    label: str
    numerator: str
    denominator: str


@dataclass(frozen=True)
class Target:
    label: str
    figure: str
    limit: float
    unit: str
    #: Multiplies the figure before it is compared (KiB to MB, say).
    scale: float = 1.0
    digits: int = 3
    source: str = "issue 5"


def figure(record: Record, path: str) -> float | None:
    """One figure of a run record: "variant.name", "ratio.key" or "group.name" (the floor)."""
    group, _, name = path.partition(".")
    if group == "ratio":
        value = record["ratios"].get(name)
    elif group in record["variants"]:
        value = record["variants"][group].get(name)
    else:
        value = record[group].get(name)
    return None if value is None else float(value)


def _divide(record: Record, ratio: Ratio) -> float | None:
    top, bottom = figure(record, ratio.numerator), figure(record, ratio.denominator)
    return None if top is None or not bottom else top / bottom


def run_variants(
    bench: str,
    config: Record,
    variants: Sequence[Variant],
    runs: int,
    measure: Callable[[Variant], Record],
    *,
    ratios: Sequence[Ratio] = (),
    targets: Sequence[Target] = (),
    before: Callable[[], Record] | None = None,
    log: Callable[[str], None] = print,
) -> Record:
    """`runs` runs of every variant: one benchmark's part of results.json (what ran, and every run's figures).

    Args:
        bench: the benchmark's name, for the progress lines.
        config: what the renderer may quote (sizes, settings); target labels are formatted with it.
        measure: one measurement of one variant.
        before: measured at the start of each run, stored under its own keys (the floor).
    """
    records = []
    for index in range(runs):
        record: Record = dict(before()) if before is not None else {}
        checks = [entry["ok"] for entry in record.values()]
        order = list(variants) if index % 2 == 0 else list(reversed(variants))
        measured = {variant.name: measure(variant) for variant in order}
        record["order"] = [variant.name for variant in order]
        record["variants"] = {variant.name: measured[variant.name] for variant in variants}
        record["ratios"] = {ratio.key: _divide(record, ratio) for ratio in ratios}
        record["ok"] = all(checks) and all(entry["ok"] for entry in measured.values())
        shown = ", ".join(f"{name} ok={entry['ok']}" for name, entry in record["variants"].items())
        ratio_text = ", ".join(f"{key} {value:.2f}" for key, value in record["ratios"].items() if value is not None)
        log(f"{bench} run {index + 1}/{runs}: {shown}" + (f"; {ratio_text}" if ratio_text else ""))
        records.append(record)
    return {
        "config": config,
        "variants": [dataclasses.asdict(variant) for variant in variants],
        "ratios": [dataclasses.asdict(ratio) for ratio in ratios],
        "targets": [{**dataclasses.asdict(target), "label": target.label.format(**config)} for target in targets],
        "runs": records,
    }

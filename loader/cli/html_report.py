"""The run report as one self-contained HTML page (`--report FILE.html`).

A migration runs for hours; afterwards people look at it rather than read JSON: how
fast each worker went over time, where the time went (listing, extraction, load,
validation), bytes read per object, the errors by category with examples, the
modalities and SOP classes loaded, the validation checks, and the command and
versions that produced it.

The page needs nothing beside it: styles inline, charts as inline SVG drawn here,
no script, font or image fetched, so it opens from an e-mail attachment or an
air-gapped share. What it shows comes from the report, the run's ledger records
(when each shard ran, on which worker) and the run's own Parquet (error examples,
modalities, SOP classes), read with DuckDB.

PHI: values quoted in error messages are masked, and secrets in the command line
(a password in a URL, a credential given as a storage option) are replaced.
"""

from __future__ import annotations

import datetime as dt
import html
import importlib.metadata
import json
import math
import os
import platform
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydicom.uid import UID

from loader.core.credentials import Redaction
from loader.core.units import duration_text
from loader.jobs.report import RunReport
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.warehouse.run_parquet import run_views

EXAMPLES_PER_CATEGORY = 3
TOP = 12  # modalities and SOP classes shown
_POINTS_PER_WORKER = 400  # a worker's line is thinned to this many points
_VERSIONS = (
    "dicom-loader",
    "pydicom",
    "pyarrow",
    "duckdb",
    "dask",
    "distributed",
    "fsspec",
    "snowflake-connector-python",
)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_PALETTE = ("#1f6feb", "#d9480f", "#2b8a3e", "#ae3ec9", "#e67700", "#0b7285", "#c2255c")


@dataclass
class Details:
    """What the page shows beyond the report's own keys."""

    records: list[ledger.ShardRecord] = field(default_factory=list)
    examples: dict[str, list[tuple[str, str | None, str]]] = field(default_factory=dict)
    modalities: list[tuple[str, int]] = field(default_factory=list)
    sop_classes: list[tuple[str, int]] = field(default_factory=list)
    command: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)  # what could not be read, and why


def gather(report: RunReport, argv: Sequence[str], options: dict[str, Any]) -> Details:
    """The ledger records and the Parquet facts of the report's run. What cannot be
    read (an output root gone) is said on the page, never an error."""
    redaction = Redaction.of(argv, os.environ)
    details = Details(command=redaction.argv(argv), versions=versions())
    try:
        out = OutputRoot.of(report["out"], options)
        details.records = list(ledger.committed_shards(out, report["run_id"]))
        _from_parquet(out, details)
    except Exception as exc:  # noqa: BLE001 - the page is written with what could be read
        why = f"the run's ledger and Parquet: {type(exc).__name__}: {exc}"
        details.unavailable.append(redaction(why))
    details.examples = {
        category: [(redaction(path), tag, redaction(message)) for path, tag, message in found]
        for category, found in details.examples.items()
    }
    return details


def _from_parquet(out: OutputRoot, details: Details) -> None:
    tables = ("dicom_ingestion_errors", "dicom_series", "dicom_instance")
    run = run_views(out, details.records, tables)
    try:
        rows = run.query(
            "SELECT error_category, file_path, tag, error_message FROM ("
            "  SELECT *, row_number() OVER (PARTITION BY error_category ORDER BY file_path) AS n"
            "  FROM dicom_ingestion_errors"
            f") WHERE n <= {EXAMPLES_PER_CATEGORY} ORDER BY error_category, file_path"
        )
        for category, path, tag, message in rows:
            details.examples.setdefault(category, []).append((path, tag, masked(message or "")))
        details.modalities = [
            (str(modality), int(n))
            for modality, n in run.query(
                "SELECT coalesce(modality, '(none)'), count(DISTINCT series_key) AS n "
                f"FROM dicom_series GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}"
            )
        ]
        details.sop_classes = [
            (_sop_class_name(uid), int(n))
            for uid, n in run.query(
                "SELECT coalesce(sop_class_uid, ''), count(DISTINCT instance_key) AS n "
                f"FROM dicom_instance GROUP BY 1 ORDER BY n DESC, 1 LIMIT {TOP}"
            )
        ]
    finally:
        run.close()


def _sop_class_name(uid: str) -> str:
    if not uid:
        return "(none)"
    name = UID(uid).name
    return uid if name == uid else f"{name} ({uid})"


def masked(message: str) -> str:
    """An error message without the values it quotes (a birth date, a name)."""
    return _QUOTED.sub("'***'", message)


def redacted(argv: Sequence[str]) -> list[str]:
    """The command line without a credential in any form the loader accepts
    (credentials.py), nor a value this command was given as one."""
    return Redaction.of(argv, os.environ).argv(argv)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "platform": platform.platform()}
    for name in _VERSIONS:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


# --- drawing ---------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _number(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() or abs(value) >= 100 else f"{value:,.2f}"


def _parse_time(text: str) -> float:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()


def _ticks(top: float, count: int = 5) -> list[float]:
    """Round values from 0 to `top` for an axis: steps of 1, 2, 2.5 or 5 × 10^n."""
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(count + 2) if i * step <= top * 1.0001]


def throughput_chart(records: Sequence[ledger.ShardRecord]) -> str:
    """Objects done over time, one line per worker (by process), from when the first
    shard started: a worker that stalls or starts late shows as a flat line."""
    if not records:
        return '<p class="none">No shard ran.</p>'
    start = min(_parse_time(r.started_at) for r in records)
    by_worker: dict[int, list[tuple[float, int]]] = {}
    for record in sorted(records, key=lambda r: r.finished_at):
        points = by_worker.setdefault(
            record.worker_pid, [(_parse_time(record.started_at) - start, 0)]
        )
        points.append((_parse_time(record.finished_at) - start, points[-1][1] + record.listed))
    width, height, left, bottom = 720, 260, 64, 30
    end = max(x for points in by_worker.values() for x, _ in points) or 1.0
    most = max(y for points in by_worker.values() for _, y in points) or 1
    plot_w, plot_h = width - left - 16, height - bottom - 12

    def at(x: float, y: float) -> str:
        return f"{left + x / end * plot_w:.1f},{12 + plot_h - y / most * plot_h:.1f}"

    parts = [_axes(width, height, left, bottom, plot_w, plot_h, end, most, "s", "objects")]
    legend = []
    for number, (pid, points) in enumerate(sorted(by_worker.items())):
        step = max(1, -(-len(points) // _POINTS_PER_WORKER))  # ceiling: at most that many
        kept = points[::step] if points[-1] in points[::step] else [*points[::step], points[-1]]
        colour = _PALETTE[number % len(_PALETTE)]
        rate = points[-1][1] / max(points[-1][0] - points[0][0], 1e-9)
        label = f"worker {number + 1} (pid {pid}): {points[-1][1]:,} objects, {rate:,.0f}/s"
        parts.append(
            f'<polyline class="worker" data-worker="{pid}" fill="none" stroke="{colour}" '
            f'stroke-width="2" points="{" ".join(at(x, y) for x, y in kept)}">'
            f"<title>{_e(label)}</title></polyline>"
        )
        legend.append(
            f'<li><span class="swatch" style="background:{colour}"></span>{_e(label)}</li>'
        )
    svg = (
        f'<svg id="throughput" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="objects done over time per worker">{"".join(parts)}</svg>'
    )
    return svg + f'<ul class="legend">{"".join(legend)}</ul>'


def _axes(
    width: int, height: int, left: int, bottom: int, plot_w: int, plot_h: int,
    end: float, most: float, x_unit: str, y_unit: str,
) -> str:  # fmt: skip
    parts = [
        f'<line x1="{left}" y1="{12 + plot_h}" x2="{left + plot_w}" y2="{12 + plot_h}" '
        'stroke="#888"/>',
        f'<line x1="{left}" y1="12" x2="{left}" y2="{12 + plot_h}" stroke="#888"/>',
    ]
    for tick in _ticks(end):
        x = left + tick / end * plot_w
        parts.append(
            f'<text x="{x:.1f}" y="{height - 10}" text-anchor="middle">{_number(tick)} '
            f"{x_unit}</text>"
        )
    for tick in _ticks(most):
        y = 12 + plot_h - tick / most * plot_h
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{_number(tick)}</text>'
        )
    parts.append(f'<text x="{left}" y="9" text-anchor="start">{_e(y_unit)}</text>')
    return "".join(parts)


def bars(name: str, items: Sequence[tuple[str, float]], unit: str = "") -> str:
    """A horizontal bar per item, its value written after it."""
    if not items:
        return '<p class="none">None.</p>'
    most = max(value for _, value in items) or 1
    rows = "".join(
        f'<div class="bar-row"><span class="bar-label">{_e(label)}</span>'
        f'<span class="bar" style="width:{max(0.5, value / most * 100):.1f}%"></span>'
        f'<span class="bar-value">{_e(_number(value))}{_e(unit)}</span></div>'
        for label, value in items
    )
    return f'<div class="bars" id="{_e(name)}">{rows}</div>'


# The phases that add up to the run's wall time (the others fall within them).
PhaseName = Literal["startup", "extraction", "shutdown", "load_after_extraction", "validation"]


def phases_chart(report: RunReport) -> str:
    """The run's wall time split into its phases, one stacked bar."""
    phases = report["phases"]
    names: tuple[tuple[PhaseName, str], ...] = (
        ("startup", "listing and cluster start"),
        ("extraction", "extraction"),
        ("shutdown", "cluster shutdown"),
        ("load_after_extraction", "load after extraction"),
        ("validation", "validation"),
    )
    total = sum(phases[key] for key, _ in names) or 1.0
    segments, legend = [], []
    for number, (key, label) in enumerate(names):
        seconds = phases[key]
        colour = _PALETTE[number % len(_PALETTE)]
        segments.append(
            f'<span class="phase" data-phase="{key}" style="width:{seconds / total * 100:.2f}%;'
            f'background:{colour}" title="{_e(label)}: {_e(duration_text(seconds))}"></span>'
        )
        legend.append(
            f'<li><span class="swatch" style="background:{colour}"></span>{_e(label)}: '
            f"{_e(duration_text(seconds))} ({seconds / total:.0%})</li>"
        )
    overlap = report["load_seconds"]
    note = (
        f"<p>The load's own work: {_e(duration_text(overlap))} in all; batches loaded during the "
        "extraction overlap it.</p>"
    )
    return (
        f'<div class="phases" id="phases">{"".join(segments)}</div>'
        f'<ul class="legend">{"".join(legend)}</ul>{note}'
    )


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], name: str) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{_e(name)}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def _validation_rows(validation: Mapping[str, Any], failed: Sequence[str]) -> list[list[str]]:
    rows = []
    for name, value in validation.items():
        state = "failed" if name in failed else "passed"
        text = value if isinstance(value, str | int | float) else _compact(value)
        rows.append([name, state, str(text)])
    return rows


def _compact(value: Any) -> str:
    text = json.dumps(value, default=str, sort_keys=True)
    return text if len(text) <= 300 else text[:297] + "..."


_STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px auto;
max-width:980px;color:#1b1f24;padding:0 16px}
h1{font-size:22px;margin-bottom:4px}h2{font-size:17px;margin-top:28px;
border-bottom:1px solid #ddd;padding-bottom:4px}
.facts{display:grid;grid-template-columns:repeat(4,1fr);gap:8px}
.fact{background:#f4f6f8;border-radius:6px;padding:8px}.fact b{display:block;font-size:18px}
.bad{color:#c92a2a}.good{color:#2b8a3e}
svg text{font-size:11px;fill:#444}
.legend{list-style:none;padding:0;margin:6px 0}.legend li{display:inline-block;margin-right:14px}
.swatch{display:inline-block;width:10px;height:10px;margin-right:5px;border-radius:2px}
.phases{display:flex;height:26px;border-radius:4px;overflow:hidden;background:#eee}
.phase{display:block;height:100%}
.bar-row{display:grid;grid-template-columns:260px 1fr 110px;align-items:center;gap:8px;
margin:3px 0}.bar{display:block;height:14px;background:#1f6feb;border-radius:2px}
.bar-label{overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.bar-value{text-align:right;font-variant-numeric:tabular-nums}
table{border-collapse:collapse;width:100%;margin:8px 0}td,th{border-bottom:1px solid #e5e5e5;
text-align:left;padding:4px 6px;vertical-align:top;word-break:break-word}
th{background:#f4f6f8}code,pre{font:12px ui-monospace,monospace;background:#f4f6f8;
padding:2px 4px;border-radius:3px;white-space:pre-wrap;word-break:break-all}
.none{color:#777}#validation td:nth-child(2){white-space:nowrap}
#examples td:first-child{white-space:nowrap}
"""


def render(report: RunReport, details: Details) -> str:
    """The page for one run's report."""
    facts = [
        ("objects listed", f"{report['listed']:,}"),
        ("loaded", f"{report['loaded']:,}"),
        ("duplicates", f"{report['duplicates']:,}"),
        ("error objects", f"{report['error_files']:,}"),
        ("unchanged", f"{report['unchanged']:,}"),
        ("whole run", duration_text(report["seconds"])),
        ("files/s (extraction)", _number(report["files_per_second"])),
        ("bytes read / object", _number(report["bytes_read_per_object"])),
    ]
    fact_html = "".join(f'<div class="fact"><b>{_e(v)}</b>{_e(k)}</div>' for k, v in facts)
    errors = report["errors"]
    examples = []
    for category in sorted(errors):
        for path, tag, message in details.examples.get(category, []):
            shown = f"({tag[:4]},{tag[4:]})" if tag and len(tag) == 8 else tag or ""
            examples.append([category, path, shown, message])
    per_shard = sorted((r.bytes_read / r.listed for r in details.records if r.listed), reverse=True)
    spread = (
        f"<p>Per shard: {_number(per_shard[-1])} to {_number(per_shard[0])} bytes per object "
        f"({len(per_shard):,} shards); {_number(report['read_requests_per_object'])}"
        " read requests per object; "
        f"{report['bytes_read']:,} bytes read of {report['bytes_listed']:,} listed.</p>"
        if per_shard
        else ""
    )
    frames = report["frame_offsets"]
    verdict = (
        '<p class="good" id="verdict">Validation passed.</p>'
        if report["validation_passed"]
        else f'<p class="bad" id="verdict">Validation failed: '
        f"{_e(', '.join(report['validation_failed']))}</p>"
    )
    unavailable = "".join(f'<p class="none">Not shown: {_e(u)}</p>' for u in details.unavailable)
    sections = [
        f"<h1>dicom-loader run {_e(report['run_id'])}</h1>",
        f"<p>{_e(report['source'])} → {_e(report['target'])}</p>",
        verdict,
        f'<div class="facts">{fact_html}</div>',
        unavailable,
        "<h2>Throughput over time, per worker</h2>",
        throughput_chart(details.records),
        "<h2>Where the time went</h2>",
        phases_chart(report),
        "<h2>Bytes read per object</h2>",
        f"<p><b>{_e(_number(report['bytes_read_per_object']))}</b> bytes "
        "per object on average (headers only; pixels are never read).</p>",
        spread,
        (
            f"<p>Frame offsets: {frames['frames_located']:,} frames located, "
            f"{frames['frames_unlocated']:,} not; "
            f"{frames['offset_table_reads']:,} offset-table reads "
            f"({frames['offset_table_bytes']:,} bytes).</p>"
            if frames["requested"]
            else ""
        ),
        "<h2>Errors by category</h2>",
        bars("errors", [(k, float(v)) for k, v in sorted(errors.items())]),
        _table(["category", "object", "tag", "message (values masked)"], examples, "examples")
        if examples
        else "",
        "<h2>Modalities loaded (series)</h2>",
        bars("modalities", [(m, float(n)) for m, n in details.modalities]),
        "<h2>SOP classes loaded (instances)</h2>",
        bars("sop-classes", [(c, float(n)) for c, n in details.sop_classes]),
        "<h2>Validation</h2>",
        _table(
            ["check", "result", "value"],
            _validation_rows(report["validation"], report["validation_failed"]),
            "validation",
        ),
        "<h2>Command and versions</h2>",
        f'<pre id="command">{_e(" ".join(details.command))}</pre>',
        _table(["component", "version"], sorted(details.versions.items()), "versions"),
    ]
    title = f"dicom-loader run {report['run_id']}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{''.join(sections)}</body></html>\n"
    )


def write(path: str, report: RunReport, options: dict[str, Any] | None = None) -> None:
    """Write the page for `report` to `path`."""
    argv = ["dicom-loader", *sys.argv[1:]]  # as typed, whether through the script or -m
    page = render(report, gather(report, argv, options or {}))
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(page, encoding="utf-8")

"""`--report FILE.html`: the page a run writes, opened in a real headless browser
(Debian's Chromium, driven by Playwright) with every network request refused: it
renders whole, its charts drawn to the numbers the archive and the report hold, its
values checked against pydicom reading the archive."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
from pathlib import Path

import pydicom
import pytest
from pydicom.uid import UID

from loader.cli import html_report
from loader.jobs.report import LoadOutcome, RunReport, RunTally, build_report
from loader.jobs.settings import RunSettings, Target
from loader.output import ledger
from loader.output.location import OutputRoot
from loader.synth import synthesize
from tests.test_cli import dicom_loader

CHROMIUM = "/usr/bin/chromium"
# As the machine's probe starts it: no sandbox as root, nothing fetched in the background.
BROWSER_ARGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--proxy-server=127.0.0.1:9",  # a closed port: any network fetch would fail
]


def _archive_facts(archive: Path) -> tuple[int, set[str], set[str]]:
    """Objects in the archive, and the modalities and SOP class names of those pydicom
    reads with the three identifying UIDs (what can load)."""
    files = [p for p in archive.rglob("*") if p.is_file()]
    modalities, classes = set(), set()
    for path in files:
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except Exception:  # noqa: BLE001 - not DICOM, cut short: an error row, not a series
            continue
        if all(ds.get(k) for k in ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")):
            modalities.add(str(ds.get("Modality") or "(none)"))
            classes.add(UID(str(ds.SOPClassUID)).name)
    return len(files), modalities, classes


@pytest.fixture(scope="module")
def page_of_a_run(tmp_path_factory):
    """A run through the CLI with two Dask workers, writing its JSON and HTML reports."""
    root = tmp_path_factory.mktemp("html")
    synthesize(root / "archive", patients=12, seed=5, bad_fraction=0.08, duplicate_fraction=0.1)
    dicom_loader(
        "run", str(root / "archive"), "--target", f"duckdb:///{root / 'w.duckdb'}",
        "--out", str(root / "out"), "--workers", "2", "--cluster-min-objects", "0",
        "--shard-size", "40", "--report", str(root / "run.json"),
        "--report", str(root / "run.html"),
    )  # fmt: skip
    report = json.loads((root / "run.json").read_text())
    return root, report


def _open(path: Path, check):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=BROWSER_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1000, "height": 1400})
            requested, problems = [], []

            def refuse(route):
                requested.append(route.request.url)
                if route.request.url.startswith("file://"):
                    route.continue_()
                else:
                    route.abort()

            page.route("**/*", refuse)
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.goto(path.as_uri(), wait_until="load")
            check(page)
            page.screenshot(path=str(path.with_suffix(".png")), full_page=True)
        finally:
            browser.close()
    return requested, problems


@pytest.mark.server
def test_the_page_renders_whole_offline_and_draws_the_runs_numbers(page_of_a_run):
    root, report = page_of_a_run
    objects, modalities, classes = _archive_facts(root / "archive")
    assert report["listed"] == objects
    seen: dict = {}

    def check(page):
        seen["title"] = page.title()
        seen["verdict"] = page.inner_text("#verdict")
        lines = page.query_selector_all("svg#throughput polyline.worker")
        seen["workers"] = len(lines)
        seen["line_widths"] = [line.bounding_box()["width"] for line in lines]
        seen["legend"] = page.inner_text("svg#throughput + ul.legend")
        seen["phases"] = [
            (s.get_attribute("data-phase"), s.bounding_box()["width"])
            for s in page.query_selector_all("#phases .phase")
        ]
        seen["phase_bar"] = page.query_selector("#phases").bounding_box()["width"]
        seen["errors"] = {
            row.query_selector(".bar-label").inner_text(): (
                row.query_selector(".bar").bounding_box()["width"],
                row.query_selector(".bar-value").inner_text(),
            )
            for row in page.query_selector_all("#errors .bar-row")
        }
        seen["modalities"] = [
            e.inner_text() for e in page.query_selector_all("#modalities .bar-label")
        ]
        seen["classes"] = [
            e.inner_text() for e in page.query_selector_all("#sop-classes .bar-label")
        ]
        seen["validation"] = len(page.query_selector_all("#validation tbody tr"))
        seen["examples"] = page.inner_text("#examples")
        seen["command"] = page.inner_text("#command")
        seen["text"] = page.inner_text("body")

    requested, problems = _open(root / "run.html", check)
    assert requested == [(root / "run.html").as_uri()] and problems == []
    assert seen["title"] == f"dicom-loader run {report['run_id']}"
    assert seen["verdict"] == "Validation passed."
    # One line per worker, drawn across the chart; their objects add up to the archive.
    assert seen["workers"] == 2 and min(seen["line_widths"]) > 100
    done = [int(n.replace(",", "")) for n in re.findall(r": ([\d,]+) objects", seen["legend"])]
    assert sum(done) == objects
    # The phases fill the bar in proportion to their seconds.
    # (listing, known_objects and deletions lie within the others: loader/jobs/report.py)
    within = {"listing", "known_objects", "deletions"}
    phases = {name: seconds for name, seconds in report["phases"].items() if name not in within}
    total = sum(phases.values())
    assert {name for name, _ in seen["phases"]} == set(phases)
    for name, width in seen["phases"]:
        assert width == pytest.approx(phases[name] / total * seen["phase_bar"], abs=1.5)
    # Each error category's bar is as long, against the longest, as its count.
    counts = {k: int(v[1].replace(",", "")) for k, v in seen["errors"].items()}
    assert counts == report["errors"]
    longest = max(width for width, _ in seen["errors"].values())
    for category, (width, _) in seen["errors"].items():
        expected = max(0.005, counts[category] / max(counts.values())) * longest
        assert width == pytest.approx(expected, abs=1.5), category
    # What was loaded, as pydicom reads the archive (the page shows the most frequent).
    assert set(seen["modalities"]) <= modalities
    assert len(seen["modalities"]) == min(len(modalities), html_report.TOP)
    names = {re.sub(r" \([\d.]+\)$", "", c) for c in seen["classes"]}
    assert names <= classes and len(names) == min(len(classes), html_report.TOP)
    assert seen["validation"] == len(report["validation"])
    for category in ("NOT_DICOM", "TRUNCATED"):
        assert category in seen["examples"]
    assert seen["command"].startswith("dicom-loader run ")
    assert "pydicom" in seen["text"] and "pyarrow" in seen["text"]
    assert "Frame offsets" not in seen["text"]  # not asked for (--frame-offsets)
    # The spread of bytes read per object over the shards, as their ledger records say.
    records = list(ledger.committed_shards(OutputRoot.of(str(root / "out")), report["run_id"]))
    per_object = sorted(r.bytes_read / r.listed for r in records if r.listed)
    spread = re.search(
        r"Per shard: ([\d,.]+) to ([\d,.]+) bytes per object \(([\d,]+) shards\)", seen["text"]
    )
    assert spread is not None
    low, high, shards = (float(v.replace(",", "")) for v in spread.groups())
    assert (low, high) == (
        pytest.approx(per_object[0], abs=0.5),
        pytest.approx(per_object[-1], abs=0.5),
    )
    assert shards == len(per_object) > 1


@pytest.mark.server
def test_the_page_fetches_nothing_and_quotes_no_value(page_of_a_run):
    """No URL the browser could fetch (no src, href, url() or import), and the values
    error messages quote are masked on the page."""
    root, _ = page_of_a_run
    text = (root / "run.html").read_text()
    assert not re.search(r"\b(src|href)\s*=|url\(|@import|<script|<link", text, re.I)
    import duckdb

    errors = root / "out" / "dicom_ingestion_errors" / "**" / "*.parquet"
    messages = duckdb.sql(
        f"SELECT error_message FROM read_parquet('{errors}') WHERE error_message LIKE '%''%'"
    ).fetchall()
    assert messages, "the archive's bad values should be quoted in some message"
    shown = html.unescape(text)  # as a browser renders it: entities are the characters
    quoted = {value for (message,) in messages for value in re.findall(r"'([^']+)'", message)}
    assert quoted
    for value in quoted:
        assert f"'{value}'" not in shown, value
    assert "'***'" in shown  # the messages are on the page, their values masked


def report_of_a_gone_run(out: Path, run_id: str = "r1") -> RunReport:
    """The report of a run that processed nothing, whose output root is `out` (gone),
    as the run builds it."""
    settings = RunSettings(source="s3://b/p", target=Target.parse("none"))
    return build_report(run_id, settings, OutputRoot.of(out), [], RunTally(), LoadOutcome())


def test_a_page_whose_run_output_is_gone_says_so(tmp_path):
    report = report_of_a_gone_run(tmp_path / "gone")
    path = tmp_path / "r.html"
    html_report.write(str(path), report)
    text = path.read_text()
    assert "No shard ran." in text and "Validation passed." in text


def test_secrets_never_reach_the_page():
    shown = html_report.redacted(
        [
            "dicom-loader",
            "run",
            "s3://bucket/x",
            "--target",
            "snowflake://loader:hunter2@acct/db/schema",
            "--storage-option",
            "secret=abc",
            "--storage-option",
            "endpoint_url=http://127.0.0.1:9000",
        ]
    )
    assert "hunter2" not in " ".join(shown) and "abc" not in " ".join(shown)
    assert "endpoint_url=http://127.0.0.1:9000" in shown
    assert html_report.masked("PatientBirthDate value '19991399' is not valid") == (
        "PatientBirthDate value '***' is not valid"
    )


def _record(pid: int, started: float, finished: float, listed: int) -> ledger.ShardRecord:
    """A shard of `listed` objects run by worker `pid` from `started` to `finished`
    (seconds after 2026-01-01T00:00:00 UTC)."""
    at = dt.datetime(2026, 1, 1)
    return ledger.ShardRecord(
        run_id="r", shard_id=f"{pid}-{started}", status="committed", listed=listed,
        parsed=listed, error_files=0, errors={}, rows={}, files={}, parquet_bytes=0,
        bytes_listed=0, bytes_read=0, read_requests=0, seconds=finished - started,
        started_at=(at + dt.timedelta(seconds=started)).isoformat(),
        finished_at=(at + dt.timedelta(seconds=finished)).isoformat(),
        worker_pid=pid, worker_peak_rss_bytes=0,
    )  # fmt: skip


def _plot_box(svg: str) -> tuple[float, float, float, float]:
    """The plot's left, right, top and bottom, read from the chart's own axis lines."""
    (x1, y1, x2, _), (_, top, _, bottom) = (
        [float(v) for v in m]
        for m in re.findall(r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" '
                            r'stroke="#888"/>', svg)
    )  # fmt: skip
    axes = re.findall(
        r'<line x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" y2="([\d.]+)" stroke="#888"/>', svg
    )
    (_, x_from, _, x_to), (y_from, _, y_to, _) = ((float(v) for v in a) for a in axes)
    assert y1 == bottom and x_from == x_to and y_from == y_to  # level and upright
    return x1, x2, top, bottom


def test_the_throughput_chart_draws_each_workers_objects_where_they_fall():
    """Each worker's line passes through (time since the first shard started, objects
    done so far) at every shard's end, on linear axes from 0 to the last end and the
    most objects; its label gives its objects and rate; the axes' ticks are round
    values at their places."""
    records = [
        _record(11, 0, 10, 50),
        _record(22, 5, 40, 100),
        _record(11, 10, 20, 30),
    ]
    svg = html_report.throughput_chart(records)
    left, right, top, bottom = _plot_box(svg)
    end, most = 40.0, 100.0

    def at(seconds: float, objects: float) -> tuple[float, float]:
        return (
            left + seconds / end * (right - left),
            bottom - objects / most * (bottom - top),
        )

    expected = {
        "11": [at(0, 0), at(10, 50), at(20, 80)],
        "22": [at(5, 0), at(40, 100)],
    }
    lines = dict(re.findall(r'data-worker="(\d+)"[^>]*points="([^"]+)"', svg))
    for pid, points in expected.items():
        drawn = [float(v) for p in lines[pid].split() for v in p.split(",")]
        assert drawn == pytest.approx([v for p in points for v in p], abs=0.06), pid
    titles = re.findall(r"<title>([^<]+)</title>", svg)
    assert titles == [
        "worker 1 (pid 11): 80 objects, 4/s",  # 80 objects in the 20 s from its start
        "worker 2 (pid 22): 100 objects, 3/s",  # 100 in 35 s
    ]
    strokes = re.findall(r'class="worker" data-worker="\d+" fill="none" stroke="([^"]+)"', svg)
    assert len(set(strokes)) == 2
    x_ticks = re.findall(
        r'<text x="([\d.]+)" y="[\d.]+" text-anchor="middle">([\d,.]+) s</text>', svg
    )
    assert [(float(x), float(v)) for x, v in x_ticks] == [
        (pytest.approx(at(t, 0)[0], abs=0.06), t) for t in (0, 10, 20, 30, 40)
    ]
    y_ticks = re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="end">([\d,.]+)</text>', svg)
    assert [(float(y) - 4, float(v)) for y, v in y_ticks] == [
        (pytest.approx(at(0, n)[1], abs=0.06), n) for n in (0, 20, 40, 60, 80, 100)
    ]


@pytest.mark.parametrize("shards", [1000, 1200])
def test_a_long_line_is_thinned_and_still_ends_at_the_workers_total(shards):
    """At most 400 points (and the last), each once, the last at the worker's total;
    1,200 shards put the last point on the thinning's own step."""
    records = [_record(7, i, i + 1, 1) for i in range(shards)]
    svg = html_report.throughput_chart(records)
    _, right, top, _ = _plot_box(svg)
    (points,) = re.findall(r'points="([^"]+)"', svg)
    drawn = [tuple(float(v) for v in p.split(",")) for p in points.split()]
    assert len(drawn) <= 401 and list(drawn[-1]) == pytest.approx([right, top], abs=0.06)
    assert len(set(drawn)) == len(drawn)
    assert f"{shards:,} objects" in svg


@pytest.mark.parametrize(
    ("top", "ticks"),
    [
        (40, [0, 10, 20, 30, 40]),
        (100, [0, 20, 40, 60, 80, 100]),
        (7, [0, 2, 4, 6]),
        (0.9, [0, 0.2, 0.4, 0.6, 0.8]),
        (12_500, [0, 2_500, 5_000, 7_500, 10_000, 12_500]),
        (5, [0, 1, 2, 3, 4, 5]),  # a step of 1 × 10^n
        (20, [0, 5, 10, 15, 20]),  # of 5 × 10^n
        (12, [0, 2.5, 5, 7.5, 10]),  # of 2.5 × 10^n: five steps cover 12, no fewer
        (0, [0]),
    ],
)
def test_axis_ticks_are_round_steps_up_to_the_top(top, ticks):
    assert html_report._ticks(top) == pytest.approx(ticks)


def test_bars_are_as_long_as_their_values():
    """A bar's width is its share of the longest (a sliver for none), and its value
    is written beside it."""
    page = html_report.bars("sizes", [("a", 250), ("b", 1000), ("c", 0), ("d", 0.25)], " B")
    widths = [float(w) for w in re.findall(r'class="bar" style="width:([\d.]+)%"', page)]
    assert widths == [25.0, 100.0, 0.5, 0.5]
    values = re.findall(r'class="bar-value">([^<]+)</span>', page)
    assert values == ["250 B", "1,000 B", "0 B", "0.25 B"]
    assert html_report.bars("none", []) == '<p class="none">None.</p>'


def test_validation_values_are_shown_whole_or_cut_at_300_characters():
    """A check's value is its text; a structured one its JSON with keys in order, cut
    to 300 characters (297 and an ellipsis) when longer."""
    long = {"objects": ["x" * 40] * 10}
    rows = html_report._validation_rows(
        {"total_records": 12, "orphans": {"z": 1, "a": 2}, "examples": long}, ["orphans"]
    )
    assert rows[:2] == [
        ["total_records", "passed", "12"],
        ["orphans", "failed", '{"a": 2, "z": 1}'],
    ]
    (name, state, text) = rows[2]
    whole = json.dumps(long)
    assert (name, state, len(whole) > 300) == ("examples", "passed", True)
    assert text == whole[:297] + "..."
    exactly = {"k": "v" * (300 - len('{"k": ""}'))}
    assert html_report._validation_rows({"c": exactly}, [])[0][2] == json.dumps(exactly)
    over = {"k": "v" * (301 - len('{"k": ""}'))}
    assert html_report._validation_rows({"c": over}, [])[0][2] == json.dumps(over)[:297] + "..."


def test_the_page_shows_the_twelve_most_loaded_and_three_examples_per_category(tmp_path):
    """From the run's own Parquet files: the 12 modalities with the most series and
    the 12 SOP classes with the most instances (ties by name), and the first three
    error rows of each category by object, their quoted values masked."""
    import collections
    import dataclasses

    import pyarrow as pa
    import pyarrow.parquet as pq

    modalities = [f"M{i:02}" for i in range(14) for _ in range(i + 1)]  # M13 has 14
    modalities += ["CT", "MR"] * 13  # ties at 13, after M13's 14
    classes = ["1.2.840.10008.5.1.4.1.1.2"] * 20 + [
        f"1.2.3.{i}" for i in range(14) for _ in range(i)
    ]
    errors = [(f"/a/{n}.dcm", "NOT_DICOM") for n in (5, 1, 4, 2, 3)] + [("/b/x.dcm", "TRUNCATED")]
    tables = {
        "dicom_series": {"series_key": list(range(len(modalities))), "modality": modalities},
        "dicom_instance": {"instance_key": list(range(len(classes))), "sop_class_uid": classes},
        "dicom_ingestion_errors": {
            "file_path": [path for path, _ in errors],
            "error_category": [category for _, category in errors],
            "tag": ["00100030"] * len(errors),
            "error_message": [f"value '{path}' is not valid" for path, _ in errors],
        },
    }
    for name, columns in tables.items():
        pq.write_table(pa.table(columns), tmp_path / f"{name}.parquet")
    record = dataclasses.replace(
        _record(1, 0, 1, len(modalities)), files={n: f"{n}.parquet" for n in tables}
    )
    details = html_report.Details(records=[record])
    html_report._from_parquet(OutputRoot.of(str(tmp_path)), details)

    def top(values: list[str]) -> list[tuple[str, int]]:
        counted = collections.Counter(values)
        return sorted(counted.items(), key=lambda item: (-item[1], item[0]))[:12]

    assert details.modalities == top(modalities)
    assert details.modalities[:3] == [("M13", 14), ("CT", 13), ("M12", 13)]
    shown = [(UID(uid).name if uid.startswith("1.2.840") else uid, n) for uid, n in top(classes)]
    assert [(re.sub(r" \([\d.]+\)$", "", name), n) for name, n in details.sop_classes] == shown
    assert details.examples == {
        "NOT_DICOM": [(f"/a/{n}.dcm", "00100030", "value '***' is not valid") for n in (1, 2, 3)],
        "TRUNCATED": [("/b/x.dcm", "00100030", "value '***' is not valid")],
    }


@pytest.mark.parametrize(("shards", "drawn"), [(399, 400), (400, 201)])
def test_a_line_of_400_points_is_drawn_whole_and_one_more_is_thinned(shards, drawn):
    """A worker's line holds its start and one point per shard: 400 points are drawn
    as they are; 401 are thinned to every second point, the last among them (201)."""
    svg = html_report.throughput_chart([_record(7, i, i + 1, 1) for i in range(shards)])
    (points,) = re.findall(r'points="([^"]+)"', svg)
    assert len(points.split()) == drawn


def test_an_examples_tag_is_shown_as_group_and_element(tmp_path):
    """An error row's tag (eight hex digits) as DICOM writes it, (gggg,eeee); a tag
    in another form as it is; none as nothing."""
    report = report_of_a_gone_run(tmp_path / "gone")
    report["errors"] = {"INVALID_VALUE": 3}
    rows = [("/a.dcm", "00100030", "m1"), ("/b.dcm", "7FE0", "m2"), ("/c.dcm", None, "m3")]
    page = html_report.render(report, html_report.Details(examples={"INVALID_VALUE": rows}))
    (table,) = re.findall(r'<table id="examples">.*?</table>', page)
    cells = [re.findall(r"<td>([^<]*)</td>", row) for row in re.findall(r"<tr>(.*?)</tr>", table)]
    assert [row[2] for row in cells if row] == ["(0010,0030)", "7FE0", ""]


def test_the_page_is_written_where_asked_folders_made(tmp_path):
    report = report_of_a_gone_run(tmp_path / "gone")
    path = tmp_path / "reports" / "nightly" / "run.html"
    html_report.write(str(path), report)
    html_report.write(str(path), report)  # again, into the folders now there
    assert path.read_text().startswith("<!DOCTYPE html>")


def test_a_run_output_that_cannot_be_read_is_named_on_the_page(tmp_path):
    report = report_of_a_gone_run(tmp_path / "gone")
    report["out"] = "no-such-protocol://bucket/out"
    page = html_report.render(report, html_report.gather(report, ["dicom-loader"], {}))
    (said,) = re.findall(r'<p class="none">Not shown: ([^<]*)</p>', page)
    assert said.startswith(
        "the run&#x27;s ledger and Parquet: ConfigError: cannot open no-such-protocol:// storage"
    )


def test_versions_name_each_component_installed_and_skip_those_missing(monkeypatch):
    import importlib.metadata

    asked = ("pydicom", "no-such-distribution-here", "pyarrow")
    monkeypatch.setattr(html_report, "_VERSIONS", asked)
    found = html_report.versions()
    assert set(found) == {"python", "platform", "pydicom", "pyarrow"}
    assert found["pyarrow"] == importlib.metadata.version("pyarrow")


def test_values_are_escaped_for_text_and_attributes_alike():
    """A value may land in an attribute (`id`, `title`) as well as in text."""
    page = html_report.bars('a"b', [("<x> & 'y'", 1)])
    assert page.startswith('<div class="bars" id="a&quot;b">')
    assert "&lt;x&gt; &amp; &#x27;y&#x27;" in page


@pytest.mark.parametrize(
    ("value", "shown"),
    [(3, "3"), (0.25, "0.25"), (99.25, "99.25"), (100.25, "100"), (1234.5, "1,234")],
)
def test_numbers_show_cents_below_100_only(value, shown):
    assert html_report._number(value) == shown


def test_the_phases_bar_and_legend_give_each_phases_share():
    report = report_of_a_gone_run(Path("/nonexistent"))
    seconds = {"startup": 10.0, "extraction": 60.0, "shutdown": 5.0,
               "load_after_extraction": 20.0, "validation": 5.0}  # fmt: skip
    report["phases"] = {**report["phases"], **seconds}
    page = html_report.phases_chart(report)
    widths = dict(re.findall(r'data-phase="(\w+)" style="width:([\d.]+)%', page))
    assert {name: float(width) for name, width in widths.items()} == seconds  # of 100 s
    shares = re.findall(r"\((\d+)%\)</li>", page)
    assert [int(share) for share in shares] == [10, 60, 5, 20, 5]


def test_a_run_that_took_no_time_is_drawn_on_a_scale_of_one():
    """Every shard finished as it started with nothing listed: the axes still have a
    scale (1 s, 1 object), never a division by zero."""
    svg = html_report.throughput_chart([_record(3, 0, 0, 0)])
    left, _, _, bottom = _plot_box(svg)
    labels = re.findall(r'text-anchor="middle">([^<]+)</text>', svg)
    assert labels == ["0 s", "0.20 s", "0.40 s", "0.60 s", "0.80 s", "1 s"]
    counts = re.findall(r'text-anchor="end">([^<]+)</text>', svg)
    assert counts == ["0", "0.20", "0.40", "0.60", "0.80", "1"]
    (points,) = re.findall(r'points="([^"]+)"', svg)
    assert points == f"{left:.1f},{bottom:.1f} {left:.1f},{bottom:.1f}"


def test_the_axes_labels_and_grid_lie_where_they_belong():
    """Time labels below the plot and inside the picture; object labels left of the
    upright axis; each grid line across the plot from that axis to its right edge."""
    svg = html_report.throughput_chart([_record(1, 0, 10, 50)])
    left, right, _, bottom = _plot_box(svg)
    height = float(re.search(r'viewBox="0 0 [\d.]+ ([\d.]+)"', svg).group(1))
    below = [
        float(y) for y in re.findall(r'<text x="[\d.]+" y="([\d.]+)" text-anchor="middle"', svg)
    ]
    assert below and all(bottom < y <= height for y in below)
    beside = [float(x) for x in re.findall(r'<text x="([\d.]+)" y="[\d.]+" text-anchor="end"', svg)]
    assert beside and all(x < left for x in beside)
    grid = re.findall(
        r'<line x1="([\d.]+)" y1="[\d.]+" x2="([\d.]+)" y2="[\d.]+" stroke="#eee"/>', svg
    )
    assert grid and all((float(a), float(b)) == (left, right) for a, b in grid)


@pytest.mark.server
def test_a_run_written_to_a_bucket_is_drawn_through_the_options_given(s3, tmp_path):
    """The page reads the run's ledger where the run wrote it, with the storage
    options the run was given (the S3 server's endpoint and keys)."""
    import s3fs

    options, _ = s3
    bucket = f"report-{tmp_path.name[-8:].lower().replace('_', '-')}"
    s3fs.S3FileSystem(**options).mkdir(bucket)
    out = OutputRoot.of(f"s3://{bucket}/out", options)
    report = report_of_a_gone_run(tmp_path / "unused", run_id="r")
    report["out"] = out.url
    ledger.commit_shard(out, "r", _record(41, 0, 30, 12))
    path = tmp_path / "r.html"
    html_report.write(str(path), report, options)
    page = path.read_text()
    assert "Not shown" not in page
    assert "worker 1 (pid 41): 12 objects" in page

"""The progress bar: what the listing handed on and whether it ended, the total and
the ETA drawn from them, and the bar as a terminal shows it."""

import os
import pty
import select
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq

from loader.jobs.pipeline import run
from loader.jobs.progress import ListingCount, counted, eta_text, listed_text, manifest_entries
from loader.jobs.settings import RunSettings, Target
from loader.synth import synthesize


def test_the_count_follows_the_listing_and_ends_with_it(tmp_path):
    archive = tmp_path / "archive"
    synthesize(archive, patients=2, seed=4)
    files = [p for p in archive.rglob("*") if p.is_file()]
    listing = ListingCount()
    report = run(
        RunSettings(
            source=str(archive),
            out=tmp_path / "pq",
            workers=0,
            target=Target.parse(f"duckdb:///{tmp_path / 'w.duckdb'}"),
        ),
        listing=listing,
    )
    assert listing.ended and listing.listed == len(files) == report["listed"]
    assert listing.total == len(files)


def test_counting_a_stream_ends_only_when_it_does():
    count = ListingCount()
    stream = counted(iter(range(3)), count)
    next(stream), next(stream)
    assert (count.listed, count.ended, count.total) == (2, False, None)
    assert list(stream) == [2] and (count.listed, count.ended, count.total) == (3, True, 3)


def test_a_manifests_entries_are_known_before_it_is_read(tmp_path):
    text = tmp_path / "objects.txt"
    text.write_text("# inventory\na.dcm\n\nb.dcm\ns3://bucket/c.dcm\n")
    assert manifest_entries(str(text)) == 3
    table = tmp_path / "objects.parquet"
    pq.write_table(pa.table({"path": ["a", "b"], "size": [1, 2]}), table)
    assert manifest_entries(str(table)) == 2
    assert manifest_entries(str(tmp_path)) is None  # a folder streams
    assert manifest_entries("s3://bucket/prefix/") is None


def test_the_bar_shows_the_listing_then_an_eta():
    streaming = ListingCount(listed=1200)
    assert listed_text(streaming) == "listing: 1,200 so far"
    assert eta_text(streaming, 600, 100.0) == "ETA when the listing ends"
    streaming.ended = True
    assert listed_text(streaming) == "of 1,200"
    assert eta_text(streaming, 600, 100.0) == "ETA 0:00:06"  # 600 left at 100/s
    manifest = ListingCount(listed=10, expected=5000)
    assert listed_text(manifest) == "of 5,000 (listing: 10)"
    assert eta_text(manifest, 1000, 0.0) == "ETA -:--:--"
    assert eta_text(manifest, 1000, 250.0) == "ETA 0:00:16"


def test_a_terminal_sees_the_total_and_the_eta_of_a_manifest(tmp_path):
    """`run` in a pseudo-terminal, as a user sees it: the bar knows a manifest's total
    at once and shows an ETA (it is drawn at least when the run ends)."""
    archive = tmp_path / "archive"
    synthesize(archive, patients=1, seed=4)
    files = sorted(str(p) for p in archive.rglob("*.dcm"))
    manifest = tmp_path / "objects.txt"
    manifest.write_text("\n".join(files) + "\n")
    primary, secondary = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"}
    env = {k: v for k, v in env.items() if not k.startswith("DICOM_LOADER_")}
    done = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loader",
            "run",
            str(manifest),
            "--workers",
            "0",
            "--out",
            str(tmp_path / "pq"),
            "--target",
            f"duckdb:///{tmp_path / 'w.duckdb'}",
        ],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=tmp_path,
    )
    os.close(secondary)
    shown = b""
    while True:
        ready, _, _ = select.select([primary], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break  # the terminal closed with the process
        if not chunk:
            break
        shown += chunk
    assert done.wait(60) == 0, shown.decode(errors="replace")[-2000:]
    text = shown.decode(errors="replace")
    assert f"of {len(files):,}" in text and "ETA " in text, text[-2000:]
    assert "listed = loaded + duplicates" in text  # then the summary

"""The per-object hot path (header bytes → Parquet rows of every table + raw JSON)
next to a bare `pydicom.dcmread(stop_before_pixels=True)` of the same bytes.

Run with `make bench`. Each modality's group shows both; the hot path's
extra_info carries its ratio to the bare parse measured in the same run.
"""

from __future__ import annotations

import datetime as dt
import shutil
import warnings
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from loader.decode import decode_elements
from loader.extract import extract_object
from loader.extract.context import ObjectFacts
from loader.headers import DEFAULT_HEADER_BYTES, HeaderReader, parse_header
from loader.output import OutputRoot
from loader.parquet import ShardWriter
from loader.synth import synthesize

MODALITIES = ("CT", "MR")
BARE_SECONDS: dict[str, float] = {}


@pytest.fixture(scope="module")
def headers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[bytes]]:
    """First reads (64 KiB) of realistic single-frame CT and MR objects, 400 of each."""
    root = tmp_path_factory.mktemp("bench-archive")
    synthesize(root, patients=18, seed=21, pixels="realistic", duplicate_fraction=0)
    found: dict[str, list[bytes]] = {m: [] for m in MODALITIES}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        if ds.Modality in found and "PerFrameFunctionalGroupsSequence" not in ds:
            with open(path, "rb") as fh:
                found[ds.Modality].append(fh.read(DEFAULT_HEADER_BYTES) + b"\0" * 8)
    assert all(len(v) >= 20 for v in found.values()), {k: len(v) for k, v in found.items()}
    # Shards hold thousands of objects; 400 a round amortises per-file Parquet costs
    # the way a shard does.
    return {m: (v * (400 // len(v) + 1))[:400] for m, v in found.items()}


def _bare(blobs: list[bytes]) -> None:
    for blob in blobs:
        pydicom.dcmread(BytesIO(blob), stop_before_pixels=True)


def _hot_path(blobs: list[bytes], out: Path) -> None:
    now = dt.datetime(2026, 1, 1)
    writer = ShardWriter(OutputRoot.of(out), "bench", "shard")
    for index, blob in enumerate(blobs):
        size = len(blob) * 64  # as if pixels followed: only the header is ever read
        parsed = parse_header("bench", HeaderReader(lambda s, e, b=blob: b[s:e], size))
        decoded = decode_elements(parsed.elements, "bench")
        facts = ObjectFacts(
            uri=f"/bench/{index}.dcm",
            size=size,
            modified_at=now,
            ingestion_source="bench",
            storage_provider="file",
            storage_container=None,
            object_key=f"{index}.dcm",
            transfer_syntax_uid=None,
            header_bytes=parsed.header_bytes,
            bytes_read=parsed.bytes_read,
            pixel_data_offset=parsed.pixel_data_offset,
            pixel_data_length=parsed.pixel_data_length,
            checksum=parsed.checksum,
            ingested_at=now,
        )
        rows, errors = extract_object(decoded, facts)
        for table, table_rows in rows.items():
            writer.add(table, table_rows, "order")
        writer.add("dicom_ingestion_errors", errors, None)
    writer.close()


@pytest.mark.parametrize("modality", MODALITIES)
def test_bare_pydicom_parse(benchmark, headers, modality):
    benchmark.group = f"hot path {modality}"
    blobs = headers[modality]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(_bare, blobs)
    BARE_SECONDS[modality] = benchmark.stats.stats.mean
    benchmark.extra_info["objects_per_second"] = len(blobs) / benchmark.stats.stats.mean


@pytest.mark.parametrize("modality", MODALITIES)
def test_hot_path_to_parquet(benchmark, headers, modality, tmp_path):
    benchmark.group = f"hot path {modality}"
    blobs = headers[modality]

    def run() -> None:
        shutil.rmtree(tmp_path / "out", ignore_errors=True)
        _hot_path(blobs, tmp_path / "out")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(run)
    mean = benchmark.stats.stats.mean
    benchmark.extra_info["objects_per_second"] = len(blobs) / mean
    if modality in BARE_SECONDS:
        benchmark.extra_info["ratio_to_bare_parse"] = round(mean / BARE_SECONDS[modality], 2)

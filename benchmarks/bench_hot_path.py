"""The per-object hot path (header bytes → Arrow tables of every table's rows +
raw JSON) next to a bare `pydicom.dcmread(stop_before_pixels=True)` of the same
bytes.

Run with `make bench`. Each object type's group shows both; the hot path's
extra_info carries its ratio to the bare parse measured in the same run, which
must stay within the type's ceiling (CEILINGS). The path ends at Arrow, as its
target reads (extraction, JSON and Arrow within half a parse); encoding Parquet
and writing files is timed per 10,000 objects in bench_write_load.

A round is one shard's worth of objects of one type (the loader's default shard
size, so the rows buffered and converted per table are a shard's): the distinct
objects the archive holds of it, repeated when there are fewer. The decoder
remembers elements by their bytes (a series shares most of its header), so every
repeat starts from an empty memory: objects profit from their siblings, as in a
shard, never from an earlier copy of themselves.
"""

from __future__ import annotations

import datetime as dt
import warnings
from dataclasses import dataclass
from io import BytesIO

import pyarrow as pa
import pydicom
import pytest

from loader.dicom.decode import decode_header
from loader.dicom.value_store import ValueStore
from loader.extract import extract_object
from loader.extract.context import ObjectFacts
from loader.headers.reader import DEFAULT_HEADER_BYTES, HeaderReader, parse_header, read_local
from loader.jobs.gc_pause import gc_paused
from loader.output.parquet import ArrowBuffers
from loader.sources.listing import DEFAULT_SHARD_SIZE
from loader.synth import synthesize
from loader.synth.iods import SOP_CLASSES

# Object types by SOP Class; the enhanced ones carry per-frame functional groups.
KINDS = (
    *("CT", "MR", "ENHANCED_CT", "ENHANCED_MR", "US", "MG"),
    *("SR", "MEASUREMENT_SR", "DOSE_SR", "SEG", "RTSTRUCT", "RTPLAN", "RTDOSE"),
)
PER_ROUND = DEFAULT_SHARD_SIZE
PATIENTS = 160  # ≈ 1,600 objects: 400+ distinct CT and MR, a few dozen of the rarer types
BARE_SECONDS: dict[str, float] = {}
# The most a type's hot path may cost, in bare parses of the same bytes (medians of
# the rounds): the target for CT and MR; for the others, their ratio on
# 2026-11-26 and about 15 % for a shared machine's noise. A change that costs more
# fails `make bench`. The reports, SEG and RTSTRUCT were set again on 2026-12-05,
# when synth's objects gained their content (TID 1500 groups, TID 10013 events,
# per-frame segment sources, referenced frames of reference) and the content tables
# came: a bare parse leaves sequences undecoded, the hot path decodes every item.
CEILINGS = {
    "CT": 1.5,
    "MR": 1.5,
    "ENHANCED_CT": 7.2,
    "ENHANCED_MR": 6.5,
    "US": 2.0,
    "MG": 1.6,
    "SR": 3.9,
    "MEASUREMENT_SR": 15.0,
    "DOSE_SR": 19.2,
    "SEG": 5.6,
    "RTSTRUCT": 3.9,
    "RTPLAN": 2.6,
    "RTDOSE": 2.2,
}


@dataclass(frozen=True)
class Sample:
    """An object's bytes up to just past the start of Pixel Data, and its real size:
    reads past the bytes kept get zeros, as from the synthetic pixels."""

    head: bytes
    size: int

    def fetch(self, start: int, end: int) -> bytes:
        end = min(end, self.size)
        return self.head[start:end] + bytes(max(0, end - max(start, len(self.head))))


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Sample]]:
    """Distinct realistic objects of every type the generator writes, in archive
    order (series together), at most PER_ROUND of each."""
    root = tmp_path_factory.mktemp("bench-archive")
    synthesize(root, patients=PATIENTS, seed=21, pixels="realistic", duplicate_fraction=0)
    by_class = {uid: kind for kind, uid in SOP_CLASSES.items() if kind in KINDS}
    found: dict[str, list[Sample]] = {kind: [] for kind in KINDS}
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        size = path.stat().st_size
        parsed = read_local(str(path), size)
        sop_class = parsed.elements[0x00080016][1].decode().strip("\0 ")
        with open(path, "rb") as fh:
            head = fh.read(max(DEFAULT_HEADER_BYTES, parsed.header_bytes + 16))
        if sop_class in by_class:
            found[by_class[sop_class]].append(Sample(head, size))
    missing = [kind for kind, found_kind in found.items() if not found_kind]
    assert not missing, missing
    return {kind: objects[:PER_ROUND] for kind, objects in found.items()}


def _round(distinct: list[Sample]) -> list[Sample]:
    return (distinct * (PER_ROUND // len(distinct) + 1))[:PER_ROUND]


def _bare(distinct: list[Sample]) -> None:
    for sample in _round(distinct):
        pydicom.dcmread(BytesIO(sample.head), stop_before_pixels=True)


def _hot_path(distinct: list[Sample]) -> dict[str, list[pa.Table]]:
    with gc_paused():  # as in a shard
        return _shard(distinct)


def _shard(distinct: list[Sample]) -> dict[str, list[pa.Table]]:
    now = dt.datetime(2026, 1, 1)
    buffers = ArrowBuffers("bench", "shard")
    converted: dict[str, list[pa.Table]] = {}
    store = ValueStore()  # the worker's, as in a shard
    for index, sample in enumerate(_round(distinct)):
        if index % len(distinct) == 0:
            store.forget()  # no object profits from an earlier copy of itself
        size = sample.size
        parsed = parse_header("bench", HeaderReader(sample.fetch, size))
        decoded = decode_header(parsed, "bench", store=store)
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
        for table, table_rows in [*rows.items(), ("dicom_ingestion_errors", errors)]:
            if buffers.add(table, table_rows, "order"):
                converted.setdefault(table, []).append(buffers.take(table))
    for table in buffers.tables():
        converted.setdefault(table, []).append(buffers.take(table))
    return converted


@pytest.mark.parametrize("kind", KINDS)
def test_bare_pydicom_parse(benchmark, samples, kind):
    benchmark.group = f"hot path {kind}"
    blobs = samples[kind]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        benchmark(_bare, blobs)
    BARE_SECONDS[kind] = benchmark.stats.stats.median
    benchmark.extra_info["objects_per_second"] = PER_ROUND / benchmark.stats.stats.median


@pytest.mark.parametrize("kind", KINDS)
def test_hot_path_to_arrow(benchmark, samples, kind):
    benchmark.group = f"hot path {kind}"
    blobs = samples[kind]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tables = benchmark(_hot_path, blobs)
    assert sum(batch.num_rows for batch in tables["dicom_raw"]) == PER_ROUND
    median = benchmark.stats.stats.median
    benchmark.extra_info["objects_per_second"] = PER_ROUND / median
    benchmark.extra_info["distinct_objects"] = len(blobs)
    if kind in BARE_SECONDS:  # not when the bare parse was deselected
        ratio = benchmark.extra_info["ratio_to_bare_parse"] = median / BARE_SECONDS[kind]
        assert ratio <= CEILINGS[kind], f"{kind} hot path costs {ratio:.2f} bare parses"

"""Mutated real files: every object ends as rows or an error row; nothing escapes."""

import random
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from loader.core.errors import FILE_ERROR_CATEGORIES
from loader.jobs.shard import ShardSettings, process_shard
from loader.sources.listing import list_source, make_shards
from tests.conftest import real_file, real_files
from tests.test_pipeline import run, settings

KNOWN = FILE_ERROR_CATEGORIES | {"TYPE_CAST_ERROR", "PARSE_WARNING"}
MARKERS = [
    b"\xff\xff\xff\xff",
    b"\xff\xff\xff\x7f",
    b"\x00\x00\x00\x80",
    b"\xfe\xff\x00\xe0",
    b"\xfe\xff\xdd\xe0",
    b"SQ\x00\x00",
    b"UN\x00\x00",
]


def _mutations(count: int, seed: int = 20261125) -> list[bytes]:
    rng = random.Random(seed)
    sources = [Path(p).read_bytes() for p in real_files()]
    sources = [s for s in sources if 0 < len(s) < 300_000 and (s[128:132] == b"DICM")]
    found = []
    for _ in range(count):
        data = bytearray(rng.choice(sources))
        kind = rng.randrange(4)
        if kind == 0:  # truncation anywhere: meta, dataset, sequences
            data = data[: rng.randrange(len(data))]
        elif kind == 1:  # bit flips
            for _ in range(rng.randint(1, 20)):
                data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        elif kind == 2:  # lengths and delimiters planted where they do not belong
            at = rng.randrange(128, len(data) - 4)
            data[at : at + 4] = rng.choice(MARKERS)
        else:  # bytes inserted
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        found.append(bytes(data))
    return found


def test_mutated_files_never_escape(tmp_path):
    archive = tmp_path / "mutated"
    archive.mkdir()
    for index, data in enumerate(_mutations(1500)):
        (archive / f"m{index:05d}.dcm").write_bytes(data)
    (shard,) = make_shards(list_source(str(archive)), 10_000)
    record = process_shard(ShardSettings(str(tmp_path / "out"), "fuzz", str(archive)), shard)
    assert record.listed == 1500
    assert record.parsed + record.error_files == 1500
    assert set(record.errors) <= KNOWN
    assert record.errors.get("TRUNCATED", 0) > 100  # the suite does reach the parser
    errors = pq.read_table(tmp_path / "out" / record.files["dicom_ingestion_errors"])
    messages = errors.column("error_message").to_pylist()
    assert not [m for m in messages if m.startswith("unexpected")], "an error of our own code"


def test_awkward_names_and_non_dicom_objects(tmp_path):
    archive = tmp_path / "archive"
    source = Path(real_file("CT_small.dcm"))
    names = ["with space.dcm", 'quote\'s "double".dcm', "new\nline.dcm", "ünïcødé 画像.dcm"]
    for name in names:
        (archive / "odd dir").mkdir(parents=True, exist_ok=True)
        (archive / "odd dir" / name).write_bytes(source.read_bytes())
    (archive / "readme.txt").write_text("not an image\n")
    (archive / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (archive / "bundle.zip").write_bytes(b"PK\x03\x04" + bytes(100))
    (archive / "empty.dcm").write_bytes(b"")
    report = run(settings(archive, tmp_path))
    assert report["listed"] == 8
    assert (report["loaded"], report["duplicates"]) == (1, 3)
    # The zip is opened as a container, and its directory is not there.
    assert report["errors"] == {"DUPLICATE": 3, "NOT_DICOM": 3, "CONTAINER_ERROR": 1}
    con = duckdb.connect(str(tmp_path / "w.duckdb"), read_only=True)
    paths = {r[0] for r in con.execute("SELECT storage_uri FROM dicom_file_location").fetchall()}
    assert paths == {str(archive / "odd dir" / n) for n in names}

"""Frame byte offsets (`--frame-offsets`): every located frame's bytes, read from the
object at the offset and length dicom_frame gives, are the frame pydicom reads from
the whole file (its Pixel Data sliced by frame for native data; its frame from the
fragments for encapsulated data). Unlocated frames say why; reads are counted."""

from __future__ import annotations

import dataclasses
import json
import os
import struct
from io import BytesIO
from pathlib import Path

import duckdb
import pydicom
import pytest
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames
from pydicom.pixels.utils import get_expected_length
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, RLELossless, generate_uid

from loader.dicom.decode import decode_header
from loader.extract import extract_object
from loader.headers.frame_offsets import BASIC, EXTENDED, NATIVE, NOT_REQUESTED, SINGLE
from loader.headers.reader import HeaderReader, parse_header
from tests.conftest import loadable_real_files, real_file
from tests.test_extract import STORE, facts

ITEM = b"\xfe\xff\x00\xe0"
DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"


def located(
    data: bytes,
    uri: str = "mem://x",
    first_bytes: int = 64 * 1024,
    requested=True,
    skip_over: int | None = None,
):
    """(dicom_frame rows, the parsed header) of an object, as a shard extracts it."""
    reader = HeaderReader(lambda start, end: data[start:end], len(data), first_bytes)
    parsed = parse_header(uri, reader, skip_over, offset_tables=requested)
    object_facts = dataclasses.replace(
        facts(uri, len(data)),
        pixel_data_offset=parsed.pixel_data_offset,
        pixel_data_length=parsed.pixel_data_length,
        frame_offsets=requested,
        offset_tables=parsed.offset_tables,
    )
    rows, errors = extract_object(decode_header(parsed, uri, store=STORE), object_facts)
    if "dicom_instance" not in rows:  # no model rows: a missing UID, say
        assert any(e["error_category"] == "VALIDATION_ERROR" for e in errors)
    return rows.get("dicom_frame", []), parsed


def fragments_in(data: bytes) -> bytes:
    """The fragments' bytes of a range of items (each an 8-byte header and data), read
    as a pixel pipeline would: up to the range's end or the Sequence Delimitation
    Item (the last frame's range runs to the object's end)."""
    joined, at = b"", 0
    while at < len(data):
        if data[at : at + 8] == DELIMITER:
            break
        assert data[at : at + 4] == ITEM, "the range must start and go on with items"
        (length,) = struct.unpack("<I", data[at + 4 : at + 8])
        joined += data[at + 8 : at + 8 + length]
        at += 8 + length
    return joined


def expected_frames(ds: pydicom.Dataset) -> list[bytes]:
    """The frames pydicom reads from a whole file."""
    frames = int(ds.get("NumberOfFrames") or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=frames))
    size = get_expected_length(ds, unit="bytes") // frames  # pydicom's own geometry
    return [ds.PixelData[i * size : (i + 1) * size] for i in range(frames)]


def check_frames(data: bytes, rows: list[dict], ds: pydicom.Dataset) -> int:
    """Assert every located frame is pydicom's; the number located."""
    encapsulated = ds.file_meta.TransferSyntaxUID.is_encapsulated
    expected = expected_frames(ds)
    assert [r["frame_number"] for r in rows] == list(range(1, len(expected) + 1))
    found = 0
    for row, frame in zip(rows, expected, strict=True):
        if row["frame_offset"] is None:
            assert row["frame_offset_missing"] and row["frame_offset_source"] is None
            continue
        assert row["frame_offset_missing"] is None
        chunk = data[row["frame_offset"] : row["frame_offset"] + row["frame_length"]]
        if encapsulated:
            # pydicom strips a frame's trailing padding byte; the fragment keeps it.
            assert fragments_in(chunk).rstrip(b"\0") == frame.rstrip(b"\0")
        else:
            assert chunk == frame
        found += 1
    return found


def _has_pixels(ds: pydicom.Dataset) -> bool:
    return "PixelData" in ds and "Rows" in ds and ds.get("BitsAllocated") != 1


def test_every_located_frame_of_every_real_file_is_the_frame_pydicom_reads():
    counts = {NATIVE: 0, BASIC: 0, SINGLE: 0}
    for path in loadable_real_files():
        try:
            ds = pydicom.dcmread(path)
            if not _has_pixels(ds) or "too_short" in path:
                continue
            expected_frames(ds)
        except Exception:  # noqa: BLE001 - pydicom cannot read its frames: nothing to compare
            continue
        data = Path(path).read_bytes()
        rows, parsed = located(data, path)
        if not rows:  # deflated: Pixel Data is not where a ranged read finds it; or a
            # missing UID: no model rows at all
            deflated = ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1.99"
            uids = ("SOPInstanceUID", "SeriesInstanceUID", "StudyInstanceUID")
            unidentified = not all(ds.get(uid) for uid in uids)
            assert (deflated and parsed.pixel_data_offset is None) or unidentified
            continue
        check_frames(data, rows, ds)
        for row in rows:
            if row["frame_offset_source"] in counts:
                counts[row["frame_offset_source"]] += 1
    assert counts[NATIVE] > 100 and counts[BASIC] > 0 and counts[SINGLE] > 10, counts


def _encapsulated_file(frames: list[bytes], how: str) -> bytes:
    """A JPEG 2000 object of these frames (their bytes are opaque here), with a Basic
    Offset Table, none, or an Extended Offset Table."""
    return _written(_encapsulated(frames, how))


def _written(ds: pydicom.Dataset) -> bytes:
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def _encapsulated(frames: list[bytes], how: str) -> pydicom.Dataset:
    ds = pydicom.dcmread(real_file("emri_small_jpeg_2k_lossless.dcm"))
    ds.NumberOfFrames = len(frames)
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid(
        entropy_srcs=[how, str(len(frames))]
    )
    if how == "extended":
        pixel_data, offsets, lengths = encapsulate_extended(frames)
        ds.PixelData = pixel_data
        ds.ExtendedOffsetTable = offsets
        ds.ExtendedOffsetTableLengths = lengths
    else:
        ds.PixelData = encapsulate(frames, has_bot=how == "basic")
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEG2000Lossless
    return ds


FRAMES = [bytes([n]) * (100 + 7 * n) for n in range(1, 6)]


@pytest.mark.parametrize(("how", "source"), [("basic", BASIC), ("extended", EXTENDED)])
def test_encapsulated_frames_from_either_offset_table(how, source):
    data = _encapsulated_file(FRAMES, how)
    rows, parsed = located(data)
    assert [r["frame_offset_source"] for r in rows] == [source] * len(FRAMES)
    ds = pydicom.dcmread(BytesIO(data))
    assert check_frames(data, rows, ds) == len(FRAMES)
    assert parsed.offset_table_requests == 0  # the first read held the table


def test_the_basic_table_is_read_where_it_is_after_a_skipped_value():
    """A 2 MB private value before Pixel Data, past the first read and over
    skip_over, is skipped: the Basic Offset Table is still read at its place in the
    object, and every frame is the one pydicom reads."""
    ds = _encapsulated(FRAMES, "basic")
    block = ds.private_block(0x0009, "DICOM-LOADER TEST", create=True)
    block.add_new(0x10, "OB", bytes(2 << 20))
    data = _written(ds)
    rows, parsed = located(data, skip_over=1 << 20)
    assert parsed.bytes_read < len(data) - (1 << 20)  # the value was skipped
    assert [r["frame_offset_source"] for r in rows] == [BASIC] * len(FRAMES)
    assert check_frames(data, rows, pydicom.dcmread(BytesIO(data))) == len(FRAMES)


def test_an_extended_table_without_its_lengths_leaves_the_basic_table():
    """PS3.3 C.7.6.3.1.8: Extended Offset Table Lengths must come with the Extended
    Offset Table. An object that has the table alone has its frames located from its
    Basic Offset Table."""
    ds = _encapsulated(FRAMES, "basic")
    _, offsets, _ = encapsulate_extended(FRAMES)
    ds.ExtendedOffsetTable = offsets
    data = _written(ds)
    rows, _ = located(data)
    assert [r["frame_offset_source"] for r in rows] == [BASIC] * len(FRAMES)
    assert check_frames(data, rows, pydicom.dcmread(BytesIO(data))) == len(FRAMES)


def test_the_extended_offset_table_needs_no_read_and_the_basic_one_at_most_one():
    """With a first read that ends before Pixel Data: one more read of exactly the
    Basic Offset Table's bytes (an item header and 4 bytes per frame); none for the
    Extended Offset Table, which the header holds."""
    basic = _encapsulated_file(FRAMES, "basic")
    header_end = basic.index(b"\xe0\x7f\x10\x00") + 12  # Pixel Data's element header
    rows, parsed = located(basic, first_bytes=header_end)
    assert parsed.offset_table_requests == 1
    assert parsed.offset_table_bytes == 8 + 4 * len(FRAMES)
    assert all(r["frame_offset"] is not None for r in rows)
    extended = _encapsulated_file(FRAMES, "extended")
    header_end = extended.index(b"\xe0\x7f\x10\x00") + 12
    rows, parsed = located(extended, first_bytes=header_end)
    assert parsed.offset_table_requests == parsed.offset_table_bytes == 0
    assert all(r["frame_offset_source"] == EXTENDED for r in rows)


def test_many_frames_with_no_offset_table_are_null_with_the_reason():
    rows, _ = located(_encapsulated_file(FRAMES, "none"))
    assert [r["frame_offset"] for r in rows] == [None] * len(FRAMES)
    assert rows[0]["frame_offset_missing"] == (
        "no offset table: 5 frames in fragments, found only by reading them all"
    )


def test_without_the_option_encapsulated_frames_are_not_read_and_classic_images_have_none():
    data = _encapsulated_file(FRAMES, "basic")
    rows, parsed = located(data, requested=False)
    assert rows == [] and parsed.offset_tables is None and parsed.offset_table_requests == 0
    enhanced = Path(real_file("liver.dcm")).read_bytes()  # native, per-frame groups
    rows, _ = located(enhanced, requested=False)
    assert [r["frame_offset_source"] for r in rows] == [NATIVE] * 3  # free: no read


def test_an_enhanced_encapsulated_object_without_the_option_says_how_to_get_offsets():
    ds = pydicom.dcmread(real_file("liver.dcm"))
    frames = [bytes([n]) * 64 for n in range(3)]
    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = RLELossless
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    rows, _ = located(out.getvalue(), requested=False)
    assert [r["frame_offset_missing"] for r in rows] == [NOT_REQUESTED] * 3


def _native_file(rows: int, columns: int, bits: int, frames: int, pixel_bytes: int) -> bytes:
    ds = pydicom.dcmread(real_file("emri_small.dcm"))
    ds.Rows, ds.Columns, ds.NumberOfFrames = rows, columns, frames
    ds.BitsAllocated = bits
    ds.BitsStored = ds.HighBit = bits if bits == 1 else ds.BitsStored
    if bits == 1:
        ds.HighBit = 0
    ds.PixelData = bytes(range(256)) * (pixel_bytes // 256) + bytes(pixel_bytes % 256)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def test_native_frames_that_do_not_fit_the_pixel_data_or_a_byte_are_null_with_why():
    short = _native_file(64, 64, 16, 10, 64 * 64 * 2 * 9)  # 9 frames' bytes for 10
    rows, _ = located(short)
    assert {r["frame_offset_missing"] for r in rows} == {
        f"Pixel Data holds {64 * 64 * 2 * 9} bytes; 10 frames of this geometry need more"
    }
    one_bit = _native_file(3, 5, 1, 4, 8)  # 15 bits a frame: frames 2 and 4 start mid-byte
    rows, _ = located(one_bit)
    assert [r["frame_offset"] is None for r in rows] == [False, True, True, True]
    assert rows[0]["frame_length"] == 2
    even = _native_file(4, 4, 1, 3, 6)  # 16 bits a frame: every frame on a byte
    rows, _ = located(even)
    assert [(r["frame_offset"] - rows[0]["frame_offset"], r["frame_length"]) for r in rows] == [
        (0, 2),
        (2, 2),
        (4, 2),
    ]


def test_a_hostile_offset_table_or_frame_count_is_a_reason_not_a_crash():
    data = bytearray(_encapsulated_file(FRAMES, "basic"))
    table = data.index(ITEM, data.index(b"\xe0\x7f\x10\x00")) + 8
    data[table + 4 : table + 8] = struct.pack("<I", 1 << 30)  # frame 2 past the object
    rows, _ = located(bytes(data))
    assert rows[0]["frame_offset_missing"] == "the basic offset table points outside the Pixel Data"
    ds = pydicom.dcmread(BytesIO(_encapsulated_file(FRAMES, "basic")))
    ds.NumberOfFrames = 10**9
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    rows, parsed = located(out.getvalue())
    assert len(rows) == 1_000_000  # cut at MAX_FRAMES
    assert parsed.offset_table_bytes <= 8 + 4 * 1_000_000
    assert rows[0]["frame_offset_missing"].startswith("the Basic Offset Table holds 5 offsets")
    # A Number of Frames that is no number: one frame's table is read, no crash.
    data = bytearray(_encapsulated_file(FRAMES, "basic"))
    count = data.index(b"\x28\x00\x08\x00IS\x02\x005 ")
    data[count + 8 : count + 10] = b"X "
    header_end = data.index(b"\xe0\x7f\x10\x00") + 12  # the table is read on its own
    _, parsed = located(bytes(data), first_bytes=header_end)
    assert parsed.offset_table_bytes == 8 + 4 * 1


def test_run_with_frame_offsets_through_the_cli(tmp_path):
    """`dicom-loader run --frame-offsets` on real files: a dicom_frame row per frame
    of every object with pixels, its bytes pydicom's frame, and the report's counts
    equal to the table's."""
    from tests.test_cli import dicom_loader

    archive = tmp_path / "archive"
    archive.mkdir()
    names = ["emri_small.dcm", "MR_small_RLE.dcm", "CT_small.dcm", "liver.dcm", "JPEG2000.dcm"]
    for name in names:
        (archive / name).write_bytes(Path(real_file(name)).read_bytes())
    (archive / "basic.dcm").write_bytes(_encapsulated_file(FRAMES, "basic"))
    database = tmp_path / "w.duckdb"
    report = tmp_path / "report.json"
    dicom_loader(
        "run", str(archive), "--frame-offsets", "--out", str(tmp_path / "out"),
        "--target", f"duckdb:///{database}", "--report", str(report), "--workers", "0",
    )  # fmt: skip
    counts = json.loads(report.read_text())["frame_offsets"]
    con = duckdb.connect(str(database), read_only=True)
    rows = con.execute(
        "SELECT i.file_path, f.frame_number, f.frame_offset, f.frame_length, "
        "f.frame_offset_source, f.frame_offset_missing FROM dicom_frame f "
        "JOIN dicom_instance i USING (instance_key) ORDER BY 1, 2"
    ).fetchall()
    con.close()
    by_file: dict[str, list[dict]] = {}
    for path, number, offset, length, source, missing in rows:
        by_file.setdefault(path, []).append(
            {
                "frame_number": number,
                "frame_offset": offset,
                "frame_length": length,
                "frame_offset_source": source,
                "frame_offset_missing": missing,
            }
        )
    assert sorted(os.path.basename(p) for p in by_file) == sorted([*names, "basic.dcm"])
    for path, frame_rows in by_file.items():
        data = Path(path).read_bytes()
        check_frames(data, frame_rows, pydicom.dcmread(path))
    assert counts["requested"] is True
    assert counts["frames_located"] == sum(1 for r in rows if r[2] is not None)
    assert counts["frames_unlocated"] == sum(1 for r in rows if r[2] is None)
    assert counts["frames_located"] == 10 + 1 + 1 + 3 + 1 + 5

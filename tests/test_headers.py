"""Header-only reading: what is read, how much, and how bad objects are named."""

import errno
import itertools
import os
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from loader.core.errors import HeaderParseError, NotDicomError, ObjectReadError, TruncatedError
from loader.headers.reader import HeaderReader, ParsedHeader, parse_header, read_local
from loader.synth import synthesize
from tests.conftest import REPO, real_file


def _reader_over(data: bytes, first: int) -> tuple[HeaderReader, list[tuple[int, int]]]:
    calls: list[tuple[int, int]] = []

    def fetch(start: int, end: int) -> bytes:
        calls.append((start, end))
        return data[start:end]

    return HeaderReader(fetch, len(data), first), calls


@pytest.fixture(scope="module")
def mammogram(tmp_path_factory) -> Path:
    """A realistic multi-MB mammogram (4096x3328x16-bit, ~27 MB of pixels)."""
    root = tmp_path_factory.mktemp("mg")
    synthesize(root, patients=4, seed=3, pixels="realistic")
    found = []
    for path in root.rglob("*"):
        if path.is_file() and path.stat().st_size > 20_000_000:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
            if ds.Modality == "MG" and "1.2.4.90" not in str(ds.file_meta.TransferSyntaxUID):
                found.append(path)
    assert found, "synth wrote no uncompressed mammogram"
    return found[0]


def test_mammogram_costs_only_its_header(mammogram: Path):
    size = mammogram.stat().st_size
    parsed = read_local(str(mammogram), size)
    full = pydicom.dcmread(mammogram)
    assert parsed.pixel_data_offset == full["PixelData"].file_tell
    assert parsed.header_bytes == parsed.pixel_data_offset - 12  # tag, VR, length
    assert parsed.bytes_read <= 64 * 1024
    assert parsed.read_requests == 1
    # The recorded offset/length fetch exactly the pixels with one ranged read.
    with open(mammogram, "rb") as fh:
        fh.seek(parsed.pixel_data_offset)
        assert fh.read(parsed.pixel_data_length) == full.PixelData


def test_long_header_grows_by_quarters_not_whole_object():
    path = real_file("rtplan.dcm")
    data = Path(path).read_bytes()
    reader, calls = _reader_over(data, first=1024)
    parsed = parse_header(path, reader)
    assert parsed.header_bytes == len(data)  # RT Plan has no Pixel Data
    assert reader.bytes_read == len(data)
    assert len(calls) > 1
    assert all(end - start < len(data) for start, end in calls)
    # Each growth adds at most a quarter of what was held (or the minimum step).
    held = 0
    for start, end in calls:
        assert start == held
        held = end


def test_header_shorter_than_prefix_reads_prefix_once():
    path = real_file("CT_small.dcm")
    parsed = read_local(path, os.path.getsize(path))
    assert parsed.read_requests == 1
    assert parsed.pixel_data_offset is not None
    full = pydicom.dcmread(path)
    assert parsed.pixel_data_length == len(full.PixelData)


def test_encapsulated_pixel_data_has_offset_but_no_length():
    path = real_file("JPEG2000.dcm")
    parsed = read_local(path, os.path.getsize(path))
    assert parsed.pixel_data_offset is not None
    assert parsed.pixel_data_length is None


def test_file_truncated_in_pixel_data_still_parses():
    path = real_file("MR_truncated.dcm")
    parsed = read_local(path, os.path.getsize(path))
    assert parsed.elements[0x00080018][1].rstrip(b"\0")


@pytest.mark.parametrize(
    "data, error",
    [
        (b"", NotDicomError),
        (b"hello, this is a text file\n" * 10, NotDicomError),
        (b"\x89PNG\r\n\x1a\n" + bytes(300), NotDicomError),
    ],
)
def test_non_dicom(tmp_path, data, error):
    path = tmp_path / "x"
    path.write_bytes(data)
    with pytest.raises(error):
        read_local(str(path), len(data))


def test_cut_inside_header_is_truncated(tmp_path):
    data = Path(real_file("CT_small.dcm")).read_bytes()
    for cut in (140, 300, 700, 1500):
        path = tmp_path / f"cut{cut}"
        path.write_bytes(data[:cut])
        with pytest.raises(TruncatedError):
            read_local(str(path), cut)


def test_vanished_file_is_read_error(tmp_path):
    with pytest.raises(ObjectReadError):
        read_local(str(tmp_path / "gone.dcm"), 100)


def test_huge_declared_length_allocates_nothing_big():
    data = Path(real_file("CT_small.dcm")).read_bytes()[:132]
    data += b"\x02\x00\x10\x00UI\x04\x00" + b"1.2\x00"
    data += b"\x08\x00\x16\x00OB\x00\x00\xff\xff\xff\xfe"  # ~4 GB value length
    reader, _ = _reader_over(data, first=64)
    with pytest.raises(TruncatedError):
        parse_header("huge", reader)
    assert reader.bytes_read == len(data)


def with_long_values(path: Path, text_bytes: int = 5 << 20, document_bytes: int = 3 << 20) -> Path:
    """CT_small with a public UT of `text_bytes` and an encapsulated document (OB) of
    `document_bytes`, both before Pixel Data."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    ds.add_new(0x0040A160, "UT", "t" * text_bytes)  # TextValue
    ds.add_new(0x00420011, "OB", b"\x01" * document_bytes)  # EncapsulatedDocument
    ds.save_as(path, enforce_file_format=True)
    return path


def test_values_over_the_limit_are_skipped_with_a_ranged_read(tmp_path):
    """A 5 MB text and a 3 MB document before Pixel Data cost neither read nor memory:
    the reader reads on after each; Pixel Data's offset is where the bytes say."""
    from loader.dicom.decode import Binary, Omitted, decode_header

    path = with_long_values(tmp_path / "long.dcm")
    size = path.stat().st_size
    data = path.read_bytes()
    pixels = data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12  # explicit VR little endian
    skipped = read_local(str(path), size, skip_over=1 << 20)
    assert skipped.bytes_read < 100_000 and skipped.read_requests <= 4
    assert skipped.pixel_data_offset == pixels and skipped.header_bytes == pixels - 12
    assert skipped.pixel_data_length == len(pydicom.dcmread(path).PixelData)
    whole = read_local(str(path), size)  # no skipping: every byte up to Pixel Data
    assert whole.bytes_read >= 8 << 20 and whole.pixel_data_offset == pixels
    ours = decode_header(skipped, str(path), 1 << 20).root
    theirs = decode_header(whole, str(path), 1 << 20).root
    assert ours[0x0040A160].value == Omitted("UT", 5 << 20)
    assert ours[0x00420011].value == Binary("OB", 3 << 20)
    assert ours.keys() == theirs.keys()
    assert all(ours[t] == theirs[t] for t in ours if t not in (0x0040A160, 0x00420011))


def _ending_with_a_long_value() -> tuple[bytes, int]:
    """CT_small without Pixel Data, ending with four 60 KiB private values (under a
    64 KiB skip_over: read through) and a 256 KiB one (over it); the object and where
    the last value starts."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    del ds.PixelData, ds[0xFFFCFFFC]  # and its Data Set Trailing Padding
    block = ds.private_block(0x7FE1, "DICOM-LOADER TEST", create=True)
    for n in range(4):
        block.add_new(0x10 + n, "OB", bytes([n]) * (60 * 1024))
    block.add_new(0x20, "OB", b"\x07" * (256 * 1024))
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    return data, len(data) - 256 * 1024


def test_a_long_value_that_ends_the_object_is_skipped_and_one_cut_is_truncated():
    """Its last value ending where the object ends, a header without Pixel Data is
    whole with that value skipped, never read; cut halfway into it, the object is
    TRUNCATED, whatever the bytes before it."""
    data, last = _ending_with_a_long_value()
    reader, _ = _reader_over(data, 64 * 1024)
    parsed = parse_header("whole", reader, skip_over=64 * 1024)
    theirs = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
    assert list(parsed.elements) == list(theirs._dict)
    assert parsed.header_bytes == len(data) and parsed.pixel_data_offset is None
    assert parsed.bytes_read < last + 16 * 1024  # of its 256 KiB, a read's growth at most
    cut = data[: last + 128 * 1024]
    reader, _ = _reader_over(cut, 64 * 1024)
    with pytest.raises(TruncatedError):
        parse_header("cut", reader, skip_over=64 * 1024)


def test_a_skipped_length_past_the_end_is_still_truncated(tmp_path):
    path = with_long_values(tmp_path / "long.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(path.read_bytes()[: 2 << 20])  # ends inside the 5 MB text
    with pytest.raises(TruncatedError):
        read_local(str(cut), cut.stat().st_size, skip_over=1 << 20)


def with_structure_set(path: Path, rois: int = 150, points: int = 6000) -> Path:
    """CT_small with an ROI Contour Sequence before Pixel Data (about 0.8 MB per ten
    ROIs), of undefined length as treatment planning systems commonly write it: items
    of undefined length, each holding a nested Contour Sequence of undefined length."""
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    rois_written = []
    for roi in range(rois):
        polygon = Dataset()
        polygon.ContourGeometricType = "CLOSED_PLANAR"
        polygon.NumberOfContourPoints = points // 3
        polygon.ContourData = [f"{roi}.{n % 1000:03d}" for n in range(points)]
        polygon.is_undefined_length_sequence_item = True
        item = Dataset()
        item.ReferencedROINumber = roi + 1
        item.ContourSequence = Sequence([polygon, polygon])
        item["ContourSequence"].is_undefined_length = True
        item.is_undefined_length_sequence_item = True
        rois_written.append(item)
    ds.ROIContourSequence = Sequence(rois_written)
    ds["ROIContourSequence"].is_undefined_length = True
    ds.save_as(path, enforce_file_format=True)
    return path


def _sequence_value_length(path: Path) -> int:
    """The ROI Contour Sequence's bytes, delimiters included, as pydicom wrote them:
    the object's size with it less its size without it, less its element header."""
    from io import BytesIO

    ds = pydicom.dcmread(path)
    del ds.ROIContourSequence
    without = BytesIO()
    ds.save_as(without, enforce_file_format=True)
    return path.stat().st_size - len(without.getvalue()) - 12


@pytest.mark.slow  # over 4 s: make test only
def test_an_undefined_length_sequence_over_the_limit_is_walked_not_held(tmp_path):
    """A 13 MB structure set before Pixel Data: its end is found by walking its
    framing through a bounded window, so the reader holds a few MB of it where reading
    through holds all of it; the decoder marks it omitted, the same way either way,
    and everything else reads as without the skip."""
    import tracemalloc

    from loader.dicom.decode import Omitted, decode_header
    from loader.headers.sequence_end import LARGEST_WINDOW

    path = with_structure_set(tmp_path / "rtstruct.dcm")
    data = path.read_bytes()
    length = _sequence_value_length(path)
    assert length > 12 << 20
    limit = 1 << 20

    def read(skip_over: int | None) -> tuple[ParsedHeader, list[tuple[int, int]], int]:
        reader, calls = _reader_over(data, first=64 * 1024)
        tracemalloc.start()
        try:
            parsed = parse_header(str(path), reader, skip_over)
            return parsed, calls, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    skipped, calls, peak = read(skip_over=limit)
    whole, _, whole_peak = read(skip_over=None)  # the sequence read and held
    assert peak < LARGEST_WINDOW + 4 * limit < length < whole_peak, (peak, whole_peak)
    assert max(end - start for start, end in calls) <= LARGEST_WINDOW
    assert skipped.pixel_data_offset == data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12
    assert skipped.pixel_data_length == len(pydicom.dcmread(path).PixelData)
    ours = decode_header(skipped, str(path), 1 << 20)
    theirs = decode_header(whole, str(path), 1 << 20)
    assert ours.root[0x30060039].value == Omitted("SQ", length)
    assert theirs.root[0x30060039].value == Omitted("SQ", length)  # the same row either way
    assert [tag for tag, _ in ours.cast_errors] == ["30060039"]
    assert ours.root.keys() == theirs.root.keys()
    assert all(ours.root[t] == theirs.root[t] for t in ours.root if t != 0x30060039)


def test_a_sequence_the_model_reads_is_never_skipped(tmp_path):
    """Over the limit or not, and of undefined length, per-frame functional groups are
    read through: the frame rows come from them."""
    from io import BytesIO

    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    from loader.headers.dataset_bytes import ParsedSequence, parse_sequence

    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    frames = []
    for n in range(2000):
        content = Dataset()
        content.FrameAcquisitionNumber = n
        frame = Dataset()
        frame.FrameContentSequence = Sequence([content])
        frame.is_undefined_length_sequence_item = True
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = Sequence(frames)
    ds["PerFrameFunctionalGroupsSequence"].is_undefined_length = True
    out = BytesIO()
    ds.save_as(out, enforce_file_format=True)
    data = out.getvalue()
    reader, _ = _reader_over(data, first=4096)
    parsed = parse_header("frames", reader, skip_over=1024)
    frames_read = parsed.elements[0x52009230]
    assert isinstance(frames_read, ParsedSequence) and frames_read.length > 50 * 1024
    contents = [parse_sequence(item[0x00209111][1], False, True) for item in frames_read.items]
    numbers = [content[0][0x00209156][1] for content in contents]
    assert [int.from_bytes(n, "little") for n in numbers] == list(range(2000))


@pytest.mark.parametrize("inside", ["an item", "the sequence's delimiter"])
def test_an_object_cut_inside_a_walked_sequence_is_truncated(tmp_path, inside):
    data = with_structure_set(tmp_path / "rtstruct.dcm", rois=20).read_bytes()
    delimiter = data.rindex(b"\xe0\x7f\x10\x00OW") - 8
    assert data[delimiter : delimiter + 4] == b"\xfe\xff\xdd\xe0"
    cut = data[: len(data) // 2 if inside == "an item" else delimiter + 4]
    reader, _ = _reader_over(cut, first=64 * 1024)
    with pytest.raises(TruncatedError):
        parse_header("cut", reader, skip_over=1 << 20)


def test_framing_the_walk_does_not_understand_is_left_to_pydicom(tmp_path):
    """An Item tag where the last Contour Sequence should be, past what the reader
    held when it began the walk: the walk gives up there, and the object reads as
    pydicom reads it (which takes the stray item in its stride), without gaps."""
    from io import BytesIO

    data = bytearray(with_structure_set(tmp_path / "rtstruct.dcm", rois=20).read_bytes())
    at = data.rindex(b"\x06\x30\x40\x00")  # the last Contour Sequence's tag ...
    assert at > 1.25 * (1 << 20)
    data[at : at + 4] = b"\xfe\xff\x00\xe0"  # ... made an Item tag inside an item
    reader, _ = _reader_over(bytes(data), first=64 * 1024)
    parsed = parse_header("odd", reader, skip_over=1 << 20)
    theirs = pydicom.dcmread(BytesIO(bytes(data)), stop_before_pixels=True, force=True)
    assert reader.skipped == 0 and list(parsed.elements) == list(theirs._dict)
    assert parsed.pixel_data_offset == data.rindex(b"\xe0\x7f\x10\x00OW") + 12


def test_a_walk_that_gives_up_after_a_skip_reads_again_from_the_start(tmp_path):
    """A 2 MB private value skipped first (past the first read, over skip_over), then
    framing the walk does not understand: the object is read again from its first
    byte with no gap, as pydicom reads it whole, and both passes count as read."""
    from io import BytesIO

    structure = pydicom.dcmread(with_structure_set(tmp_path / "rtstruct.dcm", rois=20))
    block = structure.private_block(0x0009, "DICOM-LOADER TEST", create=True)
    block.add_new(0x10, "OB", bytes(range(256)) * (8 * 1024))
    tag = block.get_tag(0x10)
    written = BytesIO()
    structure.save_as(written, enforce_file_format=True)
    data = bytearray(written.getvalue())
    at = data.rindex(b"\x06\x30\x40\x00")  # the last Contour Sequence's tag ...
    data[at : at + 4] = b"\xfe\xff\x00\xe0"  # ... made an Item tag inside an item
    reader, calls = _reader_over(bytes(data), first=64 * 1024)
    parsed = parse_header("odd", reader, skip_over=1 << 20)
    theirs = pydicom.dcmread(BytesIO(bytes(data)), stop_before_pixels=True, force=True)
    assert calls[0][0] == 0 and any(start == 0 for start, _ in calls[1:])  # read again
    assert reader.skipped == 0 and reader.gaps is None
    assert list(parsed.elements) == list(theirs._dict)
    assert parsed.elements[tag][1] == theirs[tag].value  # held: nothing was skipped
    assert parsed.pixel_data_offset == data.rindex(b"\xe0\x7f\x10\x00OW") + 12
    assert parsed.bytes_read == sum(end - start for start, end in calls) > len(data) - (1 << 20)


def test_pixel_data_position_is_where_pydicom_finds_the_value_in_every_real_file():
    """dicom_file_location's pixel_data_offset and pixel_data_length: the bytes there
    are the Pixel Data value pydicom reads from the whole file (an encapsulated one
    up to its delimiter). The element's own bytes decide its encoding: some objects
    say explicit VR in their transfer syntax and are implicit (SC_rgb_jpeg.dcm)."""
    from tests.conftest import loadable_real_files

    checked = 0
    for path in loadable_real_files():
        try:
            ds = pydicom.dcmread(path)
            value = ds.get("PixelData")
        except Exception:  # noqa: BLE001 - pydicom cannot read it whole: nothing to compare
            continue
        if not isinstance(value, bytes) or ds.file_meta.get("TransferSyntaxUID") == (
            "1.2.840.10008.1.2.1.99"  # deflated: the value is not in the object's bytes
        ):
            continue
        parsed = read_local(path, os.path.getsize(path))  # pydicom read it: so must we
        data = Path(path).read_bytes()
        if parsed.pixel_data_offset is None:
            continue
        # The header ends where the Pixel Data element starts: its tag, then 8 or 12
        # bytes (implicit VR; explicit VR with its reserved bytes) before the value.
        start = parsed.header_bytes
        assert data[start : start + 4] in (b"\xe0\x7f\x10\x00", b"\x7f\xe0\x00\x10"), path
        assert parsed.pixel_data_offset - start in (8, 12), os.path.basename(path)
        length = parsed.pixel_data_length
        stored = data[parsed.pixel_data_offset :][: length if length is not None else len(value)]
        if ds["PixelData"].VR in ("OW", "OB or OW") and not ds.is_little_endian:
            continue  # pydicom may hold big endian words swapped
        assert stored == value, os.path.basename(path)
        checked += 1
    assert checked > 100


def _bare(implicit_vr: bool, little_endian: bool, with_meta: bool = False) -> bytes:
    """CT_small's dataset written by pydicom with no preamble and no DICM marker (what
    some archives keep), in the encoding asked; with_meta keeps its group 0002."""
    from io import BytesIO

    ds = pydicom.dcmread(real_file("CT_small.dcm"), stop_before_pixels=True)
    out = BytesIO()
    if with_meta:  # a Part 10 file less its preamble and DICM marker
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()[132:]
    ds.file_meta, ds.preamble = pydicom.dataset.FileMetaDataset(), None
    pydicom.filewriter.dcmwrite(
        out, ds, implicit_vr=implicit_vr, little_endian=little_endian, enforce_file_format=False
    )
    return out.getvalue()


@pytest.mark.parametrize(
    ("implicit_vr", "little_endian", "with_meta"),
    [(True, True, False), (False, True, False), (False, False, False), (True, True, True)],
)
def test_a_dataset_without_a_preamble_is_read_as_pydicom_reads_it(
    tmp_path, implicit_vr, little_endian, with_meta
):
    """A dataset that starts at its first element (group 0008, or 0002 when its meta
    group is kept), in either byte order, implicit or explicit VR: every element
    pydicom reads of it, forced, the loader reads too."""
    data = _bare(implicit_vr, little_endian, with_meta)
    path = tmp_path / "bare"
    path.write_bytes(data)
    forced = pydicom.dcmread(path, force=True)
    parsed = read_local(str(path), len(data))
    assert sorted(int(e.tag) for e in forced) == sorted(int(t) for t in parsed.elements)
    assert len(parsed.elements) > 20
    assert parsed.transfer_syntax_uid == forced.file_meta.get("TransferSyntaxUID")


def test_what_pydicom_fails_on_is_truncated_only_when_it_read_to_the_end():
    """An object pydicom fails on is TRUNCATED when pydicom had read to its end (here
    an item's value length overruns the item's delimiter, so it reads on to the end
    and finds no tag), and a PARSE_ERROR when it stopped inside (an unknown VR in
    the meta group: the rest is never read)."""
    data = Path(real_file("OBXXXX1A_rle.dcm")).read_bytes()
    at = data.index(b"CS\x04\x00TRUE\xfe\xff\x0d\xe0")  # a value, then its item's end
    overrun = data[: at + 2] + b"\x0c" + data[at + 3 :]  # 12 bytes: over the delimiter
    with pytest.raises(Exception, match="No tag to read"):
        pydicom.dcmread(BytesIO(overrun), stop_before_pixels=True, force=True)
    reader, _ = _reader_over(overrun, 64 * 1024)
    with pytest.raises(TruncatedError, match="object ends inside its header"):
        parse_header("overrun", reader)
    data = Path(real_file("CT_small.dcm")).read_bytes()
    assert data[132:138] == b"\x02\x00\x00\x00UL"  # the meta group's length
    unknown = data[:136] + b"WL" + data[138:]
    with pytest.raises(NotImplementedError):
        pydicom.dcmread(BytesIO(unknown), stop_before_pixels=True, force=True)
    reader, _ = _reader_over(unknown, 64 * 1024)
    with pytest.raises(HeaderParseError, match="Unknown Value Representation 'WL'"):
        parse_header("unknown", reader)
    assert reader.tell() < reader.size


def test_seven_bytes_cannot_hold_an_element(tmp_path):
    """An element takes eight bytes at least (tag, VR, length): seven that start as
    one are not DICOM."""
    path = tmp_path / "seven"
    path.write_bytes(b"\x08\x00\x60\x00CS\x00")  # (0008,0060) CS, its length cut
    with pytest.raises(NotDicomError):
        read_local(str(path), 7)


def test_eight_bytes_can_hold_an_element(tmp_path):
    """One element of no value is eight bytes: pydicom, forced, reads it, and so does
    the loader (what such an object lacks is for validation to say, not the reader)."""
    path = tmp_path / "eight"
    path.write_bytes(b"\x08\x00\x60\x00CS\x00\x00")  # (0008,0060) CS, empty
    forced = pydicom.dcmread(path, force=True)
    assert [int(t) for t in read_local(str(path), 8).elements] == [int(e.tag) for e in forced]


def test_a_big_endian_object_has_its_syntax_and_cut_is_truncated(tmp_path):
    """A big endian file: its transfer syntax is the file's, and the object cut
    inside its header is TRUNCATED, not a parse error."""
    source = real_file("MR_small_bigendian.dcm")
    data = Path(source).read_bytes()
    expected = pydicom.dcmread(source, stop_before_pixels=True).file_meta.TransferSyntaxUID
    parsed = read_local(source, len(data))
    assert parsed.transfer_syntax_uid == expected == "1.2.840.10008.1.2.2"
    header_end = parsed.header_bytes
    for cut in (300, 1000, header_end - 3):  # inside elements (at a boundary, a shorter dataset)
        path = tmp_path / f"cut{cut}"
        path.write_bytes(data[:cut])
        with pytest.raises(TruncatedError):
            read_local(str(path), cut)


def test_the_reader_is_a_file_as_pydicom_expects_one():
    """read() with no size reads to the end; a seek before the start stays at it;
    reading up to what the first read fetched fetches nothing more."""
    data = bytes(range(256)) * 1024  # 256 KiB
    reader, calls = _reader_over(data, 64 * 1024)
    assert reader.read(64 * 1024) == data[: 64 * 1024] and calls == [(0, 64 * 1024)]
    assert reader.peek(64 * 1024) == data[: 64 * 1024] and len(calls) == 1  # held: no read
    assert reader.seek(-10, 1) == 64 * 1024 - 10
    assert reader.seek(-10, 2) == len(data) - 10
    assert reader.seek(-10) == 0 and reader.tell() == 0
    assert reader.read() == data and reader.read() == b""
    listed_longer, _ = _reader_over(data, 64 * 1024)
    listed_longer.size += 500  # the listing said more than the store holds
    listed_longer.ensure(len(data) + 500)
    assert listed_longer.size == len(data)
    # The same after a skipped value: positions in the buffer are the object's less
    # what was skipped, and no read asks past what the listing said.
    skipping, calls = _reader_over(data, 64 * 1024)
    listed = skipping.size = len(data) + 500
    skipping.skip(1000, 100_000)
    skipping.ensure(len(data) + 500)
    assert skipping.size == len(data) and all(end <= listed for _, end in calls)
    assert skipping.buffer() == data[:1000] + data[101_000:]


def test_a_stream_is_read_from_its_start_wherever_it_stands():
    """A member's stream handed over mid-way (a zip member after a peek) is read from
    the object's first byte: the header parses as the file's does."""
    from io import BytesIO

    from loader.headers.reader import read_stream

    data = Path(real_file("CT_small.dcm")).read_bytes()
    stream = BytesIO(data)
    stream.seek(100)
    parsed = read_stream("zip://ct.dcm::x.zip", stream, len(data))
    assert (
        parsed.pixel_data_offset
        == read_local(real_file("CT_small.dcm"), len(data)).pixel_data_offset
    )


def test_a_first_read_fetched_ahead_is_the_first_read():
    """The first read handed over by read-ahead counts as one request; shorter than
    asked, it says the object is shorter than listed; whole, the header reads on."""
    data = Path(real_file("CT_small.dcm")).read_bytes()
    ahead = HeaderReader(lambda s, e: data[s:e], len(data), 1024, prefetched=data[:1024])
    assert (ahead.requests, ahead.bytes_read, ahead.size) == (1, 1024, len(data))
    parsed = parse_header("ahead", ahead)
    assert (
        parsed.pixel_data_offset
        == read_local(real_file("CT_small.dcm"), len(data)).pixel_data_offset
    )
    short = HeaderReader(lambda s, e: data[s:e], len(data) + 500, 64 * 1024, prefetched=data)
    assert short.size == len(data)


def _implicit_ct() -> bytes:
    """CT_small written by pydicom in implicit VR little endian (an 8-byte element
    header for Pixel Data, where explicit VR has 12)."""
    from pydicom.uid import ImplicitVRLittleEndian

    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    out = BytesIO()
    ds.save_as(out, implicit_vr=True, little_endian=True)
    return out.getvalue()


@pytest.mark.parametrize("encoding", ["explicit", "implicit"])
def test_an_object_cut_where_pixel_data_starts_still_says_where(encoding):
    """Cut right after Pixel Data's element header, an object still says where its
    value would start: where it starts in the whole file. Cut one byte or four
    sooner, inside that header, it is TRUNCATED."""
    data = (
        Path(real_file("CT_small.dcm")).read_bytes() if encoding == "explicit" else _implicit_ct()
    )
    reader, _ = _reader_over(data, 64 * 1024)
    offset = parse_header("whole", reader).pixel_data_offset
    assert data[offset - (12 if encoding == "explicit" else 8) : offset][:4] == b"\xe0\x7f\x10\x00"
    reader, _ = _reader_over(data[:offset], 64 * 1024)
    assert parse_header("cut", reader).pixel_data_offset == offset
    for short in (1, 4):
        reader, _ = _reader_over(data[: offset - short], 64 * 1024)
        with pytest.raises(TruncatedError):
            parse_header("cut inside", reader)


def test_offset_tables_are_read_only_when_asked():
    """Encapsulated Pixel Data's offset tables cost a read: taken only when asked
    (frame offsets), from a file or a stream alike."""
    from io import BytesIO

    from loader.headers.reader import read_stream

    source = real_file("emri_small_jpeg_2k_lossless.dcm")
    data = Path(source).read_bytes()
    assert read_local(source, len(data)).offset_tables is None
    assert read_stream("s", BytesIO(data), len(data)).offset_tables is None
    assert read_local(source, len(data), offset_tables=True).offset_tables is not None


def test_what_cannot_be_read_says_why_in_one_line(tmp_path):
    """A missing file, a stream that fails, an empty object: each its error, with the
    reason the system or the object gives."""
    from io import BytesIO

    from loader.headers.reader import read_stream

    with pytest.raises(ObjectReadError, match=r"cannot open: No such file or directory$"):
        read_local(str(tmp_path / "gone.dcm"), 100)
    # A file that opens and then fails to read (a failing disk's EIO): Linux answers
    # a read of a process's own memory at address 0 so (proc(5), /proc/pid/mem).
    eio = os.strerror(errno.EIO)
    with pytest.raises(ObjectReadError, match=rf"read failed: {eio}$"):
        read_local("/proc/self/mem", 1000)

    class Failing(BytesIO):
        def read(self, size=-1):
            raise OSError("connection reset")

    with pytest.raises(ObjectReadError, match="read failed: connection reset"):
        read_stream("tar://a.dcm::x.tar", Failing(b"x" * 200), 200)
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(NotDicomError, match=r"empty object \(0 bytes\)"):
        read_local(str(tmp_path / "empty"), 0)


def test_a_read_of_nothing_returns_nothing_and_moves_nowhere():
    """As a Python file's read(0): no bytes, the position kept, nothing fetched."""
    data = bytes(range(256)) * 64
    reader, calls = _reader_over(data, 1024)
    reader.seek(100)
    assert reader.read(0) == b"" and reader.tell() == 100 and calls == [(0, 1024)]


def test_a_read_past_what_is_held_grows_by_a_quarter_of_it():
    """The class's rule: a read past the buffer fetches to its own end or a quarter
    more than is held (at least 16 KiB), whichever is further."""
    data = bytes(range(256)) * 4096  # 1 MiB
    reader, calls = _reader_over(data, 128 * 1024)
    assert reader.read(128 * 1024 + 1) == data[: 128 * 1024 + 1]
    assert calls == [(0, 128 * 1024), (128 * 1024, 160 * 1024)]
    reader.seek(0)
    reader.read(328 * 1024)  # further than a quarter more (200 KiB): to its own end
    assert calls[2] == (160 * 1024, 328 * 1024)


def _assert_counts_are_the_fetches(
    parsed: ParsedHeader, calls: list[tuple[int, int]], data: bytes, elapsed: float
) -> None:
    """The requests, bytes and wait a header reports are those of the fetches made."""
    assert parsed.read_requests == len(calls)
    assert parsed.bytes_read == sum(len(data[s:e]) for s, e in calls)
    assert 0 <= parsed.read_seconds <= elapsed


def test_a_header_walked_past_its_first_read_grows_by_quarters_and_counts_every_fetch(tmp_path):
    """A structure set of small values, 1 MB before Pixel Data: each growth is a
    quarter of what is held (at least 16 KiB); the requests, bytes and time reported
    are those of the fetches made, and the header ends where pydicom's Pixel Data
    starts."""
    import time

    path = with_structure_set(tmp_path / "rtstruct.dcm", rois=60, points=300)
    data = path.read_bytes()
    reader, calls = _reader_over(data, 16 * 1024)
    started = time.perf_counter()
    parsed = parse_header(str(path), reader)
    elapsed = time.perf_counter() - started
    assert parsed.pixel_data_offset == data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12
    assert len(calls) > 5 and all(s == e0 for (_, e0), (s, _) in itertools.pairwise(calls))
    assert [e - s for s, e in calls[1:-1]] == [max(s // 4, 16 * 1024) for s, _ in calls[1:-1]]
    _assert_counts_are_the_fetches(parsed, calls, data, elapsed)


def test_a_sequence_walked_after_a_skipped_value_is_found_where_it_lies(tmp_path):
    """A 2 MB text, skipped, then a structure set over the limit, walked: the walk
    starts at the sequence's place in the object (past the skipped bytes), its
    fetches are counted like any other, and every other element reads as without
    skipping."""
    import time

    from loader.dicom.decode import Omitted, decode_header

    path = with_structure_set(tmp_path / "rtstruct.dcm", rois=20)
    ds = pydicom.dcmread(path)
    ds.add_new(0x0040A160, "UT", "t" * (2 << 20))  # TextValue, before the sequence
    ds.save_as(path, enforce_file_format=True)
    data = path.read_bytes()
    length = _sequence_value_length(path)
    assert length > 1 << 20
    reader, calls = _reader_over(data, 64 * 1024)
    started = time.perf_counter()
    skipped = parse_header(str(path), reader, skip_over=1 << 20)
    elapsed = time.perf_counter() - started
    assert skipped.pixel_data_offset == data.rindex(b"\xe0\x7f\x10\x00OW\x00\x00") + 12
    _assert_counts_are_the_fetches(skipped, calls, data, elapsed)
    whole = read_local(str(path), len(data))
    ours = decode_header(skipped, str(path), 1 << 20).root
    theirs = decode_header(whole, str(path), 1 << 20).root
    assert ours[0x30060039].value == Omitted("SQ", length)
    assert ours.keys() == theirs.keys()
    assert all(ours[t] == theirs[t] for t in ours if t not in (0x30060039, 0x0040A160))


@pytest.mark.parametrize(
    "first",
    [
        b"\x08\x00\x12\x00DA\x12\x0020010203\\20010204 ",  # two dates: a VR ending in A
        b"\x08\x00\x54\x00AE\x10\x00ARCHIVE_AE_TITLE",
    ],
)
def test_a_bare_dataset_may_start_with_any_vr(tmp_path, first):
    """A dataset without preamble whose first element is a DA of two values (18
    bytes) or an AE (Retrieve AE Title, 16 bytes): its VR's letters say it is an
    element, though its first eight bytes read as a length they would be over 1 MB;
    pydicom, forced, reads it, and so does the loader."""
    institution = b"A TEACHING HOSPITAL WITH A NAME LONG ENOUGH TO FILL SIXTY FOUR BYTES OK"[:64]
    data = (
        first
        + b"\x08\x00\x60\x00CS\x02\x00CT"
        + b"\x08\x00\x80\x00LO\x40\x00"
        + institution
        + b"\x08\x00\x90\x00PN\x08\x00DOE^JOHN"
        + b"\x10\x00\x10\x00PN\x10\x00DOE^JANE^MIDDLE "
    )
    assert len(data) > 132  # longer than a preamble and its marker: pydicom's first look
    path = tmp_path / "bare"
    path.write_bytes(data)
    forced = pydicom.dcmread(path, force=True)
    parsed = read_local(str(path), len(data))
    assert [int(e.tag) for e in forced] == [int(t) for t in parsed.elements]
    assert len(parsed.elements) == 5


def test_a_stream_is_asked_for_the_ranges_a_fetch_would_be(tmp_path):
    """A member's stream is read range by range as an object store is: the same
    reads, of the same sizes, counted alike."""
    from io import BytesIO

    from loader.headers.reader import read_stream

    data = with_structure_set(tmp_path / "rtstruct.dcm", rois=30, points=300).read_bytes()
    asked = []

    class Counted(BytesIO):
        def read(self, n=-1):
            asked.append((self.tell(), self.tell() + n))
            return super().read(n)

    parsed = read_stream("zip://s.dcm::x.zip", Counted(data), len(data), 16 * 1024)
    reader, calls = _reader_over(data, 16 * 1024)
    expected = parse_header("s.dcm", reader)
    assert asked == calls and parsed.read_requests == len(calls)
    assert parsed.bytes_read == expected.bytes_read


def test_the_first_read_is_as_the_readme_states():
    """`--header-bytes`' defaults as the README's option table gives them: 64 KiB on
    object stores, 16 KiB on filesystems; a value given is used everywhere."""
    import re

    from loader.headers.reader import first_read_bytes

    readme = (REPO / "README.md").read_text()
    row = next(line for line in readme.splitlines() if line.startswith("| `--header-bytes N`"))
    found = re.search(r"(\d+) KiB on object stores, (\d+) KiB on filesystems", row)
    assert found is not None, row
    remote, local = (int(kib) * 1024 for kib in found.groups())
    assert first_read_bytes(None, remote=True) == remote
    assert first_read_bytes(None, remote=False) == local
    assert first_read_bytes(4096, remote=True) == first_read_bytes(4096, remote=False) == 4096


@pytest.mark.parametrize(
    ("frames_value", "table_frames"),
    [(b"10", 10), (b"1 ", 1), (b"x ", 1), (None, 1)],
    ids=["ten", "one", "not-a-number", "absent"],
)
def test_the_basic_offset_table_read_is_the_size_the_frames_give_it(
    tmp_path, frames_value, table_frames
):
    """Asked for offset tables, the reader takes the Basic Offset Table's bytes as an
    object of its Number of Frames holds them (PS3.5 A.4: an item header and 4 bytes
    a frame); a value that is not a number, or none, is one frame."""
    source = Path(real_file("emri_small_jpeg_2k_lossless.dcm"))  # 10 frames, J2K
    data = source.read_bytes()
    if frames_value is None:
        ds = pydicom.dcmread(source)
        del ds.NumberOfFrames
        ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
        data = (tmp_path / "mf.dcm").read_bytes()
    else:
        element = b"\x28\x00\x08\x00IS\x02\x00"
        at = data.index(element) + len(element)
        data = data[:at] + frames_value + data[at + 2 :]
    offset = data.rindex(b"\xe0\x7f\x10\x00") + 12  # explicit VR, a 4-byte length
    reader, _ = _reader_over(data, 1024)
    parsed = parse_header("mf.dcm", reader, offset_tables=True)
    assert parsed.pixel_data_offset == offset
    assert parsed.offset_tables.basic == data[offset : offset + 8 + 4 * table_frames]

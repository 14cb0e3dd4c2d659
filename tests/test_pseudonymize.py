"""Pseudonymisation in the workers: consistent pseudonyms, and no clear PHI value of
the input anywhere in what a run writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pydicom
import pytest
from pydicom.datadict import tag_for_keyword

from loader.core.errors import ConfigError
from loader.dicom.decode import decode_header
from loader.dicom.pseudonymize import Pseudonymizer, read_key
from loader.dicom.value_store import ValueStore
from loader.headers.reader import read_local
from loader.jobs.pipeline import run
from loader.jobs.settings import RunSettings, Target
from loader.synth import synthesize
from tests.conftest import real_file

KEY = b"0123456789abcdef-test-key"


def _decoded(name: str):
    path = real_file(name)
    return decode_header(read_local(path, os.path.getsize(path)), path)


def _decoded_dataset(ds: pydicom.Dataset):
    """`ds` as pydicom writes it, read and decoded as the loader reads a file."""
    buffer = io.BytesIO()
    ds.save_as(buffer)
    data = buffer.getvalue()
    with tempfile.NamedTemporaryFile(suffix=".dcm") as fh:
        fh.write(data)
        fh.flush()
        return decode_header(read_local(fh.name, len(data)), fh.name)


def test_identifiers_and_names_become_keyed_pseudonyms():
    first, again, other = (
        _decoded("CT_small.dcm"),
        _decoded("CT_small.dcm"),
        _decoded("CT_small.dcm"),
    )
    clear_id, clear_name = first.root[0x00100020].value, first.root[0x00100010].value
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(first)
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(again)
    Pseudonymizer(b"another key of 16+ bytes", shift_dates=False, uids=False).apply(other)
    pseudonym = first.root[0x00100020].value
    assert pseudonym.startswith("ID") and clear_id not in pseudonym
    assert (
        first.root[0x00100010].value.startswith("ANON^")
        and first.root[0x00100010].value != clear_name
    )
    assert again.root[0x00100020].value == pseudonym  # the same in every file and run
    assert other.root[0x00100020].value != pseudonym  # and only with this key
    born = _decoded("rtstruct.dcm")
    assert born.root[0x00100030].value == "19691231"
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(born)
    assert born.root[0x00100030].value == "19690101"  # a birth date keeps its year only


def test_pseudonyms_have_their_documented_forms():
    pseudonymizer = Pseudonymizer(KEY, shift_dates=False, uids=False)
    assert re.fullmatch(r"ANON\^[0-9A-F]{16}", pseudonymizer.name("Doe^Jane"))
    assert re.fullmatch(r"ID[0-9A-F]{24}", pseudonymizer.identifier("12345"))
    # A shift of 1 to 365 days back, each of them reached over many patients.
    days = {
        -Pseudonymizer(KEY, shift_dates=False, uids=False).shift_of(f"PAT{n}").days
        for n in range(5000)
    }
    assert days == set(range(1, 366))


def _h(kind: str, value: str) -> bytes:
    """README's H(kind, v): HMAC-SHA256 of the kind, a NUL and the value, keyed."""
    return hmac.new(KEY, kind.encode() + b"\0" + value.encode(), hashlib.sha256).digest()


def test_pseudonyms_follow_the_derivation_the_readme_gives():
    """Pseudonyms must not change between versions (values loaded before must still
    join) and whoever holds the key can derive them: each kind, as README states it."""
    pseudonymizer = Pseudonymizer(KEY, uids=True, shift_dates=False)
    for value in ("12345", "Doe^Jane", "ÜNÏCØDÉ^名前", ""):
        assert pseudonymizer.identifier(value) == "ID" + _h("id", value).hex()[:24].upper()
        assert pseudonymizer.name(value) == "ANON^" + _h("name", value).hex()[:16].upper()
        days = int.from_bytes(_h("shift", value)[:4], "big") % 365 + 1
        assert pseudonymizer.shift_of(value) == dt.timedelta(days=-days)
    uid = "1.2.840.113619.2.1.1.322987881.621.736170080.681"
    assert pseudonymizer.uid(uid) == f"2.25.{int.from_bytes(_h('uid', uid)[:16], 'big')}"


def test_each_patient_moves_by_its_own_shift():
    """An object's dates move by the shift of its own patient's ID (none: of the
    empty ID), whichever patient came before."""
    pseudonymizer = Pseudonymizer(KEY, shift_dates=True, uids=False)
    for patient in ("PAT-A", "PAT-B", None):
        ds = pydicom.dcmread(real_file("CT_small.dcm"))
        if patient is None:
            del ds.PatientID
        else:
            ds.PatientID = patient
        ds.StudyDate = "20100615"
        decoded = _decoded_dataset(ds)
        pseudonymizer.apply(decoded)
        moved = dt.date(2010, 6, 15) + pseudonymizer.shift_of(patient or "")
        assert decoded.root[0x00080020].value == moved.strftime("%Y%m%d"), patient


def test_dates_move_together_per_patient():
    plain, moved = _decoded("CT_small.dcm"), _decoded("CT_small.dcm")
    Pseudonymizer(KEY, shift_dates=True, uids=False).apply(moved)
    offsets = set()
    for tag, element in plain.root.items():
        if element.vr == "DA" and isinstance(element.value, str):
            before = dt.datetime.strptime(element.value, "%Y%m%d")
            after = dt.datetime.strptime(moved.root[tag].value, "%Y%m%d")
            offsets.add((after - before).days)
    assert len(offsets) == 1 and -365 <= offsets.pop() <= -1


# PS3.15's Basic Profile, by keyword (pydicom's dictionary gives the tags): the
# identifiers rows carry, replaced always; the instance UIDs it replaces ("U"),
# replaced with --pseudonymize-uids.
BASIC_PROFILE_IDENTIFIERS = (
    "PatientID", "OtherPatientIDs", "PatientAddress", "PatientTelephoneNumbers",
    "AccessionNumber", "StudyID", "RequestedProcedureID", "PerformedProcedureStepID",
)  # fmt: skip
BASIC_PROFILE_UIDS = (
    "InstanceCreatorUID", "SOPInstanceUID", "ReferencedSOPInstanceUID", "TransactionUID",
    "IrradiationEventUID", "StudyInstanceUID", "SeriesInstanceUID", "FrameOfReferenceUID",
    "SynchronizationFrameOfReferenceUID", "ConcatenationUID", "DimensionOrganizationUID",
    "PaletteColorLookupTableUID", "LargePaletteColorLookupTableUID", "UID", "ObservationUID",
    "ObservationSubjectUIDTrial", "StorageMediaFileSetUID", "ReferencedFrameOfReferenceUID",
    "RelatedFrameOfReferenceUID", "DoseReferenceUID", "ReferencedSOPInstanceUIDInFile",
    "TrackingUID",
)  # fmt: skip


def test_every_basic_profile_identifier_and_uid_is_replaced(tmp_path):
    """Each attribute of the lists above, set in one object (pydicom writes it), is
    replaced by a pseudonym of its kind; a date in the old dotted form moves with
    the others."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    for n, keyword in enumerate(BASIC_PROFILE_IDENTIFIERS):
        setattr(ds, keyword, f"CLEAR{n:02d}")
    for n, keyword in enumerate(BASIC_PROFILE_UIDS):
        setattr(ds, keyword, f"1.2.826.0.1.3680043.8.498.{n + 1}")
    ds.StudyDate, ds.ContentDate = "20010203", "2001.02.03"  # ACR-NEMA wrote dates dotted
    path = tmp_path / "listed.dcm"
    ds.save_as(path)
    decoded = decode_header(read_local(str(path), path.stat().st_size), str(path))
    Pseudonymizer(KEY, shift_dates=True, uids=True).apply(decoded)
    root = decoded.root
    for n, keyword in enumerate(BASIC_PROFILE_IDENTIFIERS):
        value = root[tag_for_keyword(keyword)].value
        assert re.fullmatch(r"ID[0-9A-F]{24}", value), (keyword, value)
        assert value == Pseudonymizer(KEY, shift_dates=False, uids=False).identifier(
            f"CLEAR{n:02d}"
        )
    for n, keyword in enumerate(BASIC_PROFILE_UIDS):
        value = root[tag_for_keyword(keyword)].value
        assert value.startswith("2.25.") and value != f"1.2.826.0.1.3680043.8.498.{n + 1}", keyword
    study, content = root[tag_for_keyword("StudyDate")], root[tag_for_keyword("ContentDate")]
    assert study.value == content.value != "20010203"


def test_a_rewrite_leaves_objects_sharing_the_same_bytes_alone(tmp_path):
    """Equal bytes decode to shared elements and items (see decode): pseudonymising
    one object must copy what it changes, nested items included."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    other = pydicom.Dataset()
    other.PatientID = "OTHER-ID-1"
    other.TypeOfPatientID = "TEXT"
    ds.OtherPatientIDsSequence = [other]
    path = tmp_path / "with-sequence.dcm"
    ds.save_as(path)
    store = ValueStore()  # one worker's: equal bytes give the same elements
    first, second = (
        decode_header(read_local(str(path), path.stat().st_size), "x", store=store) for _ in "12"
    )
    sequence = 0x00101002
    assert second.root[sequence] is first.root[sequence]  # shared
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(first)
    assert first.root[sequence].value[0][0x00100020].value.startswith("ID")
    assert second.root[sequence].value[0][0x00100020].value == "OTHER-ID-1"
    assert second.root[0x00100020].value == ds.PatientID
    assert first.root[0x00080060] is second.root[0x00080060]  # unchanged: still shared


def test_a_short_key_or_shifting_without_a_key_is_refused(tmp_path):
    (tmp_path / "key").write_bytes(b"short")
    with pytest.raises(ConfigError, match="16 bytes"):
        read_key(str(tmp_path / "key"))
    (tmp_path / "key").write_bytes(b" fifteen bytes!!\n")  # 15: whitespace around is not key
    with pytest.raises(ConfigError, match="16 bytes"):
        read_key(str(tmp_path / "key"))
    (tmp_path / "key").write_bytes(b"sixteen bytes ok")
    assert read_key(str(tmp_path / "key")) == b"sixteen bytes ok"
    with pytest.raises(ConfigError, match="cannot read the pseudonymisation key file"):
        read_key(str(tmp_path / "no-such-key"))
    with pytest.raises(ConfigError, match="needs --pseudonymize-key-file"):
        RunSettings(source=str(tmp_path), shift_dates=True)


@pytest.fixture(scope="module")
def neutral_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A generated archive plus real files under names that carry no identifier
    (paths are kept as they are: they are storage facts, not header values)."""
    built = tmp_path_factory.mktemp("phi") / "built"
    synthesize(built, patients=4, seed=31, duplicate_fraction=0.05)
    for name in ("CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "chrH31.dcm", "chrFren.dcm"):
        shutil.copy(real_file(name), built / name)
    neutral = built.parent / "archive"
    neutral.mkdir()
    for index, path in enumerate(sorted(p for p in built.rglob("*") if p.is_file())):
        shutil.copy(path, neutral / f"object-{index:05d}.dcm")
    return neutral


# What the README says --pseudonymize-key-file replaces, besides every person name.
IDENTIFYING = (
    "PatientID",
    "OtherPatientIDs",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "AccessionNumber",
    "StudyID",
    "RequestedProcedureID",
    "PerformedProcedureStepID",
)


def _clear_phi(archive: Path) -> set[str]:
    """Every identifying value of the input, as the outputs could spell it."""
    found: set[str] = set()
    for path in archive.iterdir():
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        for element in ds.iterall():
            if element.VR == "PN" and element.value:
                for name in element.value if element.VM > 1 else [element.value]:
                    found.add(str(name))
            elif element.keyword in IDENTIFYING and element.value:
                found.update(
                    str(v) for v in ([element.value] if element.VM == 1 else element.value)
                )
        birth = ds.get("PatientBirthDate")
        if birth:
            found.update({birth, f"{birth[:4]}-{birth[4:6]}-{birth[6:8]}"})
    # A short all-digit value ("000200", a StudyID) is also part of UIDs and times:
    # it is checked by equality in its own columns instead (below).
    return {v for v in found if len(v) >= 4 and not (v.isdigit() and len(v) < 8)}


def _clear_values(archive: Path, keyword: str) -> set[str]:
    values = set()
    for path in archive.iterdir():
        value = pydicom.dcmread(path, stop_before_pixels=True, force=True).get(keyword)
        if value:
            values.add(str(value))
    return values


def _files_written(folder: Path) -> list[str]:
    """Every file a run wrote under `folder` as text: Parquet rows, ledger and the rest."""
    texts = []
    for path in folder.rglob("*"):
        if path.suffix == ".parquet":
            texts.append(json.dumps(pq.read_table(path).to_pylist(), default=str))
        elif path.is_file():
            texts.append(path.read_text(errors="replace"))
    return texts


def _warehouse_texts(db: Path) -> list[str]:
    """Every row of every table of a DuckDB warehouse, as text."""
    with duckdb.connect(str(db), read_only=True) as con:
        tables = con.execute("SELECT table_name FROM information_schema.tables").fetchall()
        return [repr(con.execute(f"SELECT * FROM {table}").fetchall()) for (table,) in tables]


def _everything_written(folder: Path, db: Path) -> list[str]:
    return _files_written(folder) + _warehouse_texts(db)


def _in_process_then_in_workers(
    archive: Path, tmp_path: Path, db: Path, key_file: Path, **pseudonymize: bool
) -> list[dict]:
    """Two runs of `archive` into `db` with the key: in this process, then in two Dask
    worker processes (the cluster started whatever the archive's size); each report
    is also written as JSON under `tmp_path`."""
    reports = []
    for run_id, workers in (("first", 0), ("second", 2)):
        report = run(
            RunSettings(
                source=str(archive),
                out=tmp_path / "pq",
                target=Target.parse(f"duckdb:///{db}"),
                workers=workers,
                cluster_min_objects=0,
                run_id=run_id,
                pseudonymize_key_file=str(key_file),
                **pseudonymize,
            )
        )
        (tmp_path / f"{run_id}.json").write_text(json.dumps(report, default=str))
        reports.append(report)
    return reports


def test_no_clear_phi_reaches_parquet_ledger_report_or_warehouse(neutral_archive, tmp_path):
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    phi = _clear_phi(neutral_archive)
    assert len(phi) > 20 and "Yamada^Tarou=山田^太郎=やまだ^たろう" in phi
    db = tmp_path / "w.duckdb"
    reports = _in_process_then_in_workers(neutral_archive, tmp_path, db, key_file, shift_dates=True)
    assert reports[0]["loaded"] == reports[1]["loaded"] > 30
    texts = _everything_written(tmp_path / "pq", db) + [
        (tmp_path / f"{r}.json").read_text() for r in ("first", "second")
    ]
    leaked = sorted({value for value in phi for text in texts if value in text})
    assert not leaked
    with duckdb.connect(str(db), read_only=True) as con:
        for keyword, column, table in (
            ("AccessionNumber", "accession_number", "dicom_study"),
            ("StudyID", "study_id", "dicom_study"),
            ("PatientID", "patient_id", "dicom_patient"),
        ):
            clear = _clear_values(neutral_archive, keyword)
            stored = {r[0] for r in con.execute(f"SELECT {column} FROM {table}").fetchall()}
            elements = con.execute(
                "SELECT value_string FROM dicom_element WHERE name = ?", [keyword]
            ).fetchall()
            stored |= {r[0] for r in elements}
            assert clear and elements and not clear & stored, keyword
    con = duckdb.connect(str(db), read_only=True)
    patients = con.execute("SELECT patient_id FROM dicom_patient").fetchall()
    runs = con.execute("SELECT count(DISTINCT _run_id), count(*) FROM dicom_patient").fetchone()
    orphans = con.execute(
        "SELECT count(*) FROM dicom_study s LEFT JOIN dicom_patient p USING (patient_key) "
        "WHERE p.patient_key IS NULL"
    ).fetchone()
    con.close()
    assert all(p[0].startswith("ID") for p in patients if p[0])
    assert runs == (1, len(patients))  # the second run's pseudonyms matched the first's
    assert orphans == (0,)  # links between rows survive


# The instance UIDs the issue and PS3.15's Basic Profile name, read by pydicom.
INSTANCE_UIDS = (
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "FrameOfReferenceUID",
    "ReferencedSOPInstanceUID",
    "ReferencedFrameOfReferenceUID",
)


def _clear_uids(archive: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {keyword: set() for keyword in INSTANCE_UIDS}
    for path in archive.iterdir():
        for element in pydicom.dcmread(path, stop_before_pixels=True, force=True).iterall():
            if element.keyword in found and element.value:
                found[element.keyword].add(str(element.value))
    return found


def test_a_keyed_uid_is_a_valid_uid_under_2_25():
    pseudonymizer = Pseudonymizer(KEY, uids=True, shift_dates=False)
    uid = pseudonymizer.uid("1.2.840.113619.2.1.1.322987881.621.736170080.681")
    assert uid.startswith("2.25.") and len(uid) <= 64
    assert all(part.isdigit() and (part == "0" or part[0] != "0") for part in uid.split("."))
    assert uid == Pseudonymizer(KEY, uids=True, shift_dates=False).uid(
        "1.2.840.113619.2.1.1.322987881.621.736170080.681"
    )
    assert uid != Pseudonymizer(b"another key of 16+ bytes", uids=True, shift_dates=False).uid(
        "1.2.3"
    )
    with pytest.raises(ConfigError, match="needs --pseudonymize-key-file"):
        RunSettings(source=".", pseudonymize_uids=True)


def test_a_keyed_uid_is_an_integer_of_128_bits():
    """PS3.5 B.2: the integer under 2.25 is a UUID's 128 bits. Over 2,000 UIDs, none
    is 2**128 or more, and some reach the top bit (all below 2**127 would happen with
    a chance of 2**-2000: fewer bits are taken)."""
    pseudonymizer = Pseudonymizer(KEY, uids=True, shift_dates=False)
    values = [int(pseudonymizer.uid(f"1.2.3.{n}").removeprefix("2.25.")) for n in range(2000)]
    assert max(values) < 2**128
    assert max(values) >= 2**127


def _one_element(vr: str, value, *, tag: int, patient: str = "PAT-A"):
    """A real object with the patient's ID and one element set (pydicom writes it),
    decoded."""
    ds = pydicom.dcmread(real_file("CT_small.dcm"))
    ds.PatientID = patient
    ds.add_new(tag, vr, value)
    return _decoded_dataset(ds)


@pytest.mark.parametrize(
    ("vr", "written", "moved_to"),
    [
        ("DA", "20010203", lambda d: d.strftime("%Y%m%d")),
        ("DA", "2001.02.03", lambda d: d.strftime("%Y%m%d")),  # ACR-NEMA's dotted form
        ("DT", "20010203101510.25+0100", lambda d: d.strftime("%Y%m%d") + "101510.25+0100"),
        ("DT", "2001020310", lambda d: d.strftime("%Y%m%d") + "10"),  # to the hour
        ("DT", "20010203+0100", lambda d: d.strftime("%Y%m%d") + "+0100"),  # a day and a zone
        ("DA", "20010231", None),  # no such day: dropped, never kept clear
        ("DA", "2001O203", None),  # a letter among the digits
        ("DT", "2001", None),  # a year alone has no day to move
        ("DT", "2001.02.0", None),  # dotted, one digit short
        ("DA", "200102", None),
        ("DA", "2001021", None),  # seven digits: no day
        ("DT", "2001021 10", None),  # a space among the date's digits
    ],
)
def test_a_date_moves_by_the_patients_shift_or_is_dropped(vr, written, moved_to):
    """A date (DA) or a date-time's date (DT) moves by the patient's shift and keeps
    the rest of its value; what holds no whole date is dropped (PS3.5 6.2: DA is
    YYYYMMDD, DT begins YYYY and may stop there)."""
    tag = tag_for_keyword("StudyDate" if vr == "DA" else "AcquisitionDateTime")
    decoded = _one_element(vr, written, tag=tag)
    pseudonymizer = Pseudonymizer(KEY, shift_dates=True, uids=False)
    pseudonymizer.apply(decoded)
    element = decoded.root[tag]
    if moved_to is None:
        assert element.value is None and element.vm == 0
    else:
        day = dt.date(2001, 2, 3) + pseudonymizer.shift_of("PAT-A")
        assert element.value == moved_to(day)


def test_empty_values_stay_empty_and_one_value_stays_one():
    """An empty identifier or name holds nothing to hide and stays empty (not the
    pseudonym of an empty text); one value stays one value, two stay two."""
    decoded = _one_element("LO", "", tag=tag_for_keyword("OtherPatientIDs"))
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(decoded)
    assert decoded.root[tag_for_keyword("OtherPatientIDs")].value in ("", None)
    decoded = _one_element("LO", ["A-1", "", "B-2"], tag=tag_for_keyword("OtherPatientIDs"))
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(decoded)
    element = decoded.root[tag_for_keyword("OtherPatientIDs")]
    identifier = Pseudonymizer(KEY, shift_dates=False, uids=False).identifier
    assert element.value == [identifier("A-1"), "", identifier("B-2")] and element.vm == 3
    decoded = _one_element("LO", "ONLY-ONE", tag=tag_for_keyword("OtherPatientIDs"))
    Pseudonymizer(KEY, shift_dates=False, uids=False).apply(decoded)
    element = decoded.root[tag_for_keyword("OtherPatientIDs")]
    assert element.value == identifier("ONLY-ONE") and element.vm == 1


def test_without_shifting_a_birth_date_keeps_its_year_and_other_dates_stay():
    """Without --shift-dates a birth date keeps its year (YYYY0101; none when it has
    no year) and every other date is kept as written."""
    pseudonymizer = Pseudonymizer(KEY, shift_dates=False, uids=False)
    for written, kept in (("19691231", "19690101"), ("UNKNOWN", None)):
        decoded = _one_element("DA", written, tag=tag_for_keyword("PatientBirthDate"))
        pseudonymizer.apply(decoded)
        assert decoded.root[tag_for_keyword("PatientBirthDate")].value == kept
    decoded = _one_element("DA", "20010203", tag=tag_for_keyword("StudyDate"))
    pseudonymizer.apply(decoded)
    assert decoded.root[tag_for_keyword("StudyDate")].value == "20010203"


def test_pseudonymized_uids_leave_no_clear_uid_and_the_model_still_joins(neutral_archive, tmp_path):
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    clear = _clear_uids(neutral_archive)
    assert all(clear.values()), {k: len(v) for k, v in clear.items()}
    references = clear["ReferencedSOPInstanceUID"] & clear["SOPInstanceUID"]
    assert references  # the archive refers to its own instances
    db = tmp_path / "w.duckdb"
    reports = _in_process_then_in_workers(
        neutral_archive, tmp_path, db, key_file, pseudonymize_uids=True
    )
    assert reports[0]["pseudonymized"] == {
        "identifiers": True,
        "dates_shifted": False,
        "uids": True,
    }
    assert all(r["validation_passed"] for r in reports)  # no orphans: keys still join
    texts = _everything_written(tmp_path / "pq", db) + [
        (tmp_path / f"{r}.json").read_text() for r in ("first", "second")
    ]
    every_clear = set().union(*clear.values())
    leaked = sorted({uid for uid in every_clear for text in texts if uid in text})
    assert not leaked, leaked[:5]
    with duckdb.connect(str(db), read_only=True) as con:
        stored = {
            column: {r[0] for r in con.execute(f"SELECT {column} FROM {table}").fetchall()}
            for column, table in (
                ("study_instance_uid", "dicom_study"),
                ("series_instance_uid", "dicom_series"),
                ("sop_instance_uid", "dicom_instance"),
            )
        }
        referenced = {
            r[0]
            for r in con.execute(
                "SELECT value_string FROM dicom_element WHERE name = 'ReferencedSOPInstanceUID'"
            ).fetchall()
        }
        runs = con.execute("SELECT count(DISTINCT _run_id) FROM dicom_instance").fetchone()
    assert len(stored["sop_instance_uid"]) == len(clear["SOPInstanceUID"])
    for values in stored.values():
        assert values and all(v.startswith("2.25.") and len(v) <= 64 for v in values)
    # A reference names the same pseudonym as the instance it refers to.
    assert len(referenced & stored["sop_instance_uid"]) == len(references)
    assert runs == (1,)  # the second run's UIDs (and keys) matched the first's


def _phi_and_its_parts(archive: Path) -> set[str]:
    """`_clear_phi`, plus each component group of a name (a DICOM JSON name is split
    into its Alphabetic, Ideographic and Phonetic parts)."""
    phi = _clear_phi(archive) | {
        part for value in _clear_phi(archive) for part in value.split("=") if len(part) >= 4
    }
    return {value for value in phi if any(c.isalnum() for c in value)}  # not "^^^^"


def _as_exports(archive: Path, folder: Path) -> Path:
    """The archive as DICOM JSON exports (pydicom's JSON of each object), 10 per file."""
    folder.mkdir()
    paths = sorted(archive.iterdir())
    for start in range(0, len(paths), 10):
        lines = [
            json.dumps(pydicom.dcmread(p, stop_before_pixels=True, force=True).to_json_dict())
            for p in paths[start : start + 10]
        ]
        (folder / f"export-{start:04d}.ndjson").write_text("\n".join(lines) + "\n")
    return folder


def _swept(tmp_path: Path, source: str, target: str, phi: set[str]) -> tuple[dict, list[str]]:
    """A pseudonymised run of `source` into `target`, and every text it wrote."""
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    report = run(
        RunSettings(
            source=source,
            out=tmp_path / "pq",
            target=Target.parse(target),
            workers=2,
            cluster_min_objects=0,
            run_id="sweep",
            pseudonymize_key_file=str(key_file),
            shift_dates=True,
            pseudonymize_uids=True,
        )
    )
    texts = [json.dumps(report, default=str), *_files_written(tmp_path / "pq")]
    assert report["loaded"] > 30 and KEY.decode() not in "".join(texts)
    return report, texts


def _leaks(phi: set[str], texts: list[str]) -> list[str]:
    return sorted({value for value in phi for text in texts if value in text})


def test_no_clear_phi_from_dicom_json_exports(neutral_archive, tmp_path, caplog):
    phi = _phi_and_its_parts(neutral_archive)
    exports = _as_exports(neutral_archive, tmp_path / "exports")
    db = tmp_path / "w.duckdb"
    report, texts = _swept(tmp_path, str(exports), f"duckdb:///{db}", phi)
    texts += [*_warehouse_texts(db), caplog.text]
    # No object keeps any of its own dates: each is shifted, or dropped.
    stored_uid = Pseudonymizer(
        KEY, uids=True, shift_dates=False
    ).uid  # how to find the object's rows
    shifted = 0
    with duckdb.connect(str(db), read_only=True) as con:
        for path in sorted(neutral_archive.iterdir()):
            ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
            clear = {
                dt.datetime.strptime(e.value[:8], "%Y%m%d").date()
                for e in ds.iterall()
                if e.VR == "DA" and isinstance(e.value, str) and e.value[:8].isdigit()
            }
            stored = {
                r[0].date()
                for r in con.execute(
                    "SELECT e.value_datetime FROM dicom_element e JOIN dicom_instance i "
                    "USING (instance_key) WHERE i.sop_instance_uid = ? AND e.vr = 'DA' "
                    "AND e.value_datetime IS NOT NULL",
                    [stored_uid(str(ds.SOPInstanceUID))],
                ).fetchall()
            }
            assert not clear & stored, path.name
            shifted += bool(stored)
    assert shifted > 30
    assert report["validation_failed"] == [], report["validation_failed"]
    assert not _leaks(phi, texts)


@pytest.mark.server
def test_no_clear_phi_from_a_pacs(neutral_archive, tmp_path, caplog):
    """Through DICOMweb, from an Orthanc of its own (the tests' shared one holds the
    PACS tests' archive)."""
    from tests.conftest import running_orthanc, stored_in_orthanc

    phi = _phi_and_its_parts(neutral_archive)
    (tmp_path / "orthanc").mkdir()
    with running_orthanc(tmp_path / "orthanc") as orthanc:
        source = stored_in_orthanc(orthanc, sorted(neutral_archive.iterdir()))
        db = tmp_path / "w.duckdb"
        report, texts = _swept(tmp_path, source, f"duckdb:///{db}", phi)
    texts += [*_warehouse_texts(db), caplog.text]
    assert report["validation_failed"] == [], report["validation_failed"]
    assert not _leaks(phi, texts)


def test_no_clear_phi_reaches_snowflake(neutral_archive, snowflake_target, tmp_path, caplog):
    from loader.core.model import TABLES
    from loader.warehouse.snowflake import SnowflakeWarehouse

    phi = _phi_and_its_parts(neutral_archive)
    report, texts = _swept(tmp_path, str(neutral_archive), snowflake_target, phi)
    warehouse = SnowflakeWarehouse(snowflake_target)
    try:
        for table in TABLES:
            texts.append(repr(warehouse.query(f"SELECT * FROM {table.name}")))
    finally:
        warehouse.close()
    texts.append(caplog.text)
    assert report["validation_failed"] == [], report["validation_failed"]
    assert not _leaks(phi, texts)


# Date and time columns of the model that hold no value of the header, each with why.
NOT_HEADER_TIMES = {
    "_loaded_at": "when the row was loaded",
    "ingested_at": "when the object was read",
    "detected_at": "when an error row was made",
    "deleted_at": "when a reload found the object gone",
    "started_at": "when a load began (dicom_load_history)",
    "finished_at": "when a load ended (dicom_load_history)",
    "modified_at": "the storage's modification time: a storage fact, kept as paths are",
    "created_at": "when an embedding was made (written by an embedding job, not the loader)",
    "evaluated_at": "when an embedding was evaluated (not the loader's)",
}
# Checked columns this archive has no value for (no object of it carries one).
ABSENT_HERE = {"dicom_sr_content.date_value"}  # no SR of this archive has a DATE item


def _header_dates(path: Path) -> set[dt.date]:
    """Every DA value and the date of every DT value in a file, at any depth, as
    pydicom reads them."""
    found = set()
    for element in pydicom.dcmread(path, stop_before_pixels=True, force=True).iterall():
        if element.VR not in ("DA", "DT") or not element.value:
            continue
        for value in element.value if element.VM > 1 else [element.value]:
            text = str(value)
            if len(text) >= 8 and text[:8].isdigit():
                try:
                    found.add(dt.datetime.strptime(text[:8], "%Y%m%d").date())
                except ValueError:  # not a calendar date: nothing to find in the outputs
                    continue
    return found


def _stored_dates(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, set[dt.date]], set[str]]:
    """Every date stored for an instance (by SOP Instance UID): each date or datetime
    column of the model but NOT_HEADER_TIMES, through the instance, its series, its
    study or its patient, and every DA and DT element row; and the columns read."""
    from loader.core.model import TABLES, ColumnType

    through = {
        "dicom_series": "JOIN dicom_series t USING (series_key)",
        "dicom_study": "JOIN dicom_series se USING (series_key) JOIN dicom_study t USING "
        "(study_key)",
        "dicom_patient": "JOIN dicom_series se USING (series_key) JOIN dicom_study st USING "
        "(study_key) JOIN dicom_patient t ON t.patient_key = st.patient_key",
    }
    stored: dict[str, set[dt.date]] = {}
    columns = set()
    for table in TABLES:
        for column in table.columns:
            if column.type not in (ColumnType.DATE, ColumnType.TIMESTAMP):
                continue
            if column.name in NOT_HEADER_TIMES:
                continue
            columns.add(f"{table.name}.{column.name}")
            if table.name == "dicom_instance":
                join = "JOIN dicom_instance t ON t.instance_key = i.instance_key"
            elif "instance_key" in table.column_names:
                join = f"JOIN {table.name} t ON t.instance_key = i.instance_key"
            else:
                join = through[table.name]  # a table nothing reaches here fails the test
            rows = con.execute(
                f"SELECT i.sop_instance_uid, t.{column.name} FROM dicom_instance i {join} "
                f"WHERE t.{column.name} IS NOT NULL"
            ).fetchall()
            for uid, value in rows:
                day = value.date() if isinstance(value, dt.datetime) else value
                stored.setdefault(uid, set()).add(day)
                stored.setdefault(f"column:{table.name}.{column.name}", set()).add(day)
    elements = con.execute(
        "SELECT i.sop_instance_uid, e.value_datetime FROM dicom_element e JOIN dicom_instance "
        "i USING (instance_key) WHERE e.vr IN ('DA', 'DT') AND e.value_datetime IS NOT NULL"
    ).fetchall()
    for uid, value in elements:
        stored.setdefault(uid, set()).add(value.date())
    return stored, columns


def test_every_date_column_and_date_element_of_an_object_is_moved(neutral_archive, tmp_path):
    """With --shift-dates no date stored for an object is one of the dates of its
    header, in any column of the model that holds a header's date or datetime (its
    instance's, its series', study's and patient's rows included) and in every DA
    and DT element row. The columns checked are the model's date and time columns but
    the named ones that hold no header value."""
    key_file = tmp_path / "pseudonym.key"
    key_file.write_bytes(KEY)
    db = tmp_path / "w.duckdb"
    report = run(
        RunSettings(
            source=str(neutral_archive),
            out=tmp_path / "pq",
            target=Target.parse(f"duckdb:///{db}"),
            workers=0,
            pseudonymize_key_file=str(key_file),
            shift_dates=True,
        )
    )
    assert report["loaded"] > 30
    clear: dict[str, set[dt.date]] = {}  # SOP Instance UID → every date of its header
    for path in sorted(neutral_archive.iterdir()):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        if "SOPInstanceUID" in ds:
            clear.setdefault(str(ds.SOPInstanceUID), set()).update(_header_dates(path))
    with duckdb.connect(str(db), read_only=True) as con:
        stored, columns = _stored_dates(con)
    checked = {c for c in columns if f"column:{c}" in stored}
    assert columns - checked == ABSENT_HERE  # every other column held dates to check
    assert len(checked) >= 10
    moved = 0
    for uid, dates_in_header in clear.items():
        dates = stored.get(uid, set())
        assert not dates & dates_in_header, (uid, sorted(dates & dates_in_header)[:3])
        moved += bool(dates)
    assert moved > 30

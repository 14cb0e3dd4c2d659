"""PHI nested in whole headers is masked: the JavaScript that the governance pattern
deploys as dicom_phi_strip (the header policies' body calls it), run by node's V8 as
Snowflake runs JavaScript UDFs, over the loader's own `dicom_raw.metadata` and
pydicom's DICOM JSON of real files and of a file with PHI in sequences. What must go
is read from pydicom: every element whose VR is PN, and the patient's identifiers,
at any depth; what must stay is every other attribute.

Snowflake JavaScript UDFs: https://docs.snowflake.com/en/developer-guide/udf/javascript/udf-javascript-introduction
(arguments are upper case; a VARIANT arrives as the JavaScript value of its JSON).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from loader.dicom.decode import decode_header
from loader.dicom.raw_json import metadata_json
from loader.headers.reader import read_local
from loader.warehouse.patterns import Names, render
from tests.conftest import loadable_real_files

# node (V8, the engine of Snowflake's JavaScript UDFs) is on every machine this
# project runs on: the tests' Azurite is an npm package (package.json).
# The patient's identifiers: besides every person name, what must never be shown.
IDENTIFIERS = {
    "PatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "ReferencedPatientSequence",
    "PatientAddress",
    "PatientTelephoneNumbers",
}


def _deployed_body() -> str:
    """The JavaScript between $$ and $$ of the function the pattern deploys."""
    statements = render("governance", Names(owner_role="OWNER", warehouse="WH"))
    function = next(s for s in statements if "FUNCTION" in s and "dicom_phi_strip" in s)
    assert re.search(r"RETURNS VARIANT LANGUAGE JAVASCRIPT\nAS \$\$", function), function
    policies = [s for s in statements if re.match(r"(CREATE|ALTER) MASKING POLICY", s)]
    headers = [s for s in policies if "dicom_phi_metadata" in s or "dicom_phi_dicom_json" in s]
    assert len(headers) == 4 and all("ELSE dicom_phi_strip(v) END" in s for s in headers)
    return function.split("$$")[1]


def _strip(documents: list, tmp_path: Path) -> list:
    """Each document through the deployed JavaScript, in one node process."""
    script = tmp_path / "strip.js"
    script.write_text(
        "const udf = new Function('V', " + json.dumps(_deployed_body()) + ");\n"
        "const input = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
        "process.stdout.write(JSON.stringify(input.map((d) => udf(d))));\n"
    )
    done = subprocess.run(
        ["node", str(script)], input=json.dumps(documents), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _phi(ds: Dataset) -> Iterator[Dataset]:
    """Elements pydicom reads as PHI, at any depth: person names and identifiers."""
    for elem in ds:
        if elem.VR == "PN" or elem.keyword in IDENTIFIERS:
            yield elem
        elif elem.VR == "SQ":
            for item in elem.value:
                yield from _phi(item)


def _keys(value) -> Iterator[str]:
    if isinstance(value, list):
        for v in value:
            yield from _keys(v)
    elif isinstance(value, dict):
        for key, v in value.items():
            yield key
            yield from _keys(v)


def _is_items(value) -> bool:
    return isinstance(value, list) and any(isinstance(v, dict) for v in value)


def _nested_phi_file(tmp_path: Path) -> str:
    ds = Dataset()
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = generate_uid(), generate_uid()
    ds.Modality = "CT"
    ds.PatientName, ds.PatientID = "Doe^Jane", "MRN-4711"
    other = Dataset()
    other.PatientID, other.IssuerOfPatientID = "OLD-99", "CLINIC"
    ds.OtherPatientIDsSequence = Sequence([other])
    referenced = Dataset()
    referenced.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.1.1"
    referenced.ReferencedSOPInstanceUID = generate_uid()
    ds.ReferencedPatientSequence = Sequence([referenced])
    request = Dataset()
    request.RequestingPhysician = "House^Gregory"
    request.RequestedProcedureID = "RP-123"
    request.ScheduledProcedureStepID = "SPS-9"
    ds.RequestAttributesSequence = Sequence([request])
    ds.PerformingPhysicianName = ["Wilson^James", "Cuddy^Lisa"]
    ds.add_new(0x00090010, "LO", "ACME 1.0")
    ds.add_new(0x00091001, "PN", "Private^Person")
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    path = tmp_path / "nested.dcm"
    ds.save_as(path, enforce_file_format=True)
    return str(path)


def _files(tmp_path: Path) -> list[str]:
    return [_nested_phi_file(tmp_path), *loadable_real_files()]


def test_the_loaders_headers_lose_every_phi_attribute_at_every_depth(tmp_path):
    paths, documents = [], []
    for path in _files(tmp_path):
        try:
            decoded = decode_header(read_local(path, os.path.getsize(path)), path)
        except Exception:  # noqa: BLE001 - files the loader records as errors have no header row
            continue
        paths.append(path)
        documents.append(json.loads(metadata_json(decoded.root)))
    masked = _strip(documents, tmp_path)
    nested_phi_seen = 0
    for path, before, after in zip(paths, documents, masked, strict=True):
        ds = pydicom.dcmread(path, stop_before_pixels=True, force=True)
        gone = {e.keyword for e in _phi(ds) if e.keyword}
        left = set(_keys(after))
        assert not gone & left, (path, gone & left)
        # Nothing else is lost: every other attribute stays, values as they were
        # (sequences lose only the PHI inside them, checked above).
        assert set(after) == set(before) - gone, path
        flat = {k: v for k, v in before.items() if k not in gone and not _is_items(v)}
        assert flat == {k: v for k, v in after.items() if k in flat}, path
        nested_phi_seen += "RequestingPhysician" in gone
    assert nested_phi_seen >= 1
    first = masked[0]
    assert first["RequestAttributesSequence"] == [
        {"RequestedProcedureID": "RP-123", "ScheduledProcedureStepID": "SPS-9"}
    ]
    assert first["Modality"] == "CT" and "ReferencedPatientSequence" not in first


def test_dicom_json_exports_lose_every_person_name_private_ones_included(tmp_path):
    datasets = []
    for path in _files(tmp_path)[:40]:
        try:
            datasets.append(pydicom.dcmread(path, stop_before_pixels=True))
        except Exception:  # noqa: BLE001 - pydicom's own refusals are not exports
            continue
    documents = []
    for ds in datasets:
        try:
            documents.append(ds.to_json_dict(bulk_data_threshold=1 << 20))
        except Exception:  # noqa: BLE001 - a value pydicom cannot write as JSON
            documents.append(None)
    kept = [(ds, doc) for ds, doc in zip(datasets, documents, strict=True) if doc is not None]
    masked = _strip([doc for _, doc in kept], tmp_path)
    for (ds, _), after in zip(kept, masked, strict=True):
        names = {f"{e.tag:08X}" for e in _phi(ds)}
        assert not names & set(_keys(after)), names & set(_keys(after))
    nested = masked[0]
    assert "00091001" not in nested  # a private PN, known by its VR alone
    request = nested["0040A370" if "0040A370" in nested else "00400275"]
    assert "00321032" not in json.dumps(request)  # RequestingPhysician
    assert "RP-123" in json.dumps(request)

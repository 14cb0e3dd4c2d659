import pyarrow.parquet as pq

from loader.model import BY_NAME, arrow_schema
from loader.output import OutputRoot
from loader.parquet import ShardWriter, part_path


def test_rows_and_columns_keep_their_object_order(tmp_path):
    writer = ShardWriter(OutputRoot.of(tmp_path), "run1", "abc")
    for n in range(3):
        writer.add(
            "dicom_sequence_item",
            {
                "sequence_item_key": [n * 10 + i for i in range(n + 1)],
                "instance_key": [n] * (n + 1),
                "parent_element_key": [7] * (n + 1),
                "item_index": list(range(n + 1)),
                "sequence_path": [f"p{n}"] * (n + 1),
            },
            f"order-{n}",
        )
        writer.add("dicom_patient", [{"patient_key": n, "patient_id": f"P{n}"}], f"order-{n}")
        writer.add(
            "dicom_ingestion_errors", [{"file_path": f"f{n}", "error_category": "NOT_DICOM"}], None
        )
    records = {r.table: r for r in writer.close()}
    assert {t: r.rows for t, r in records.items()} == {
        "dicom_sequence_item": 6,
        "dicom_patient": 3,
        "dicom_ingestion_errors": 3,
    }
    items = pq.read_table(tmp_path / part_path("dicom_sequence_item", "run1", "abc")).to_pylist()
    assert [(r["instance_key"], r["_source_order"]) for r in items] == [
        (0, "order-0"),
        (1, "order-1"),
        (1, "order-1"),
        (2, "order-2"),
        (2, "order-2"),
        (2, "order-2"),
    ]
    assert {r["_run_id"] for r in items} == {"run1"}
    patients = pq.read_table(tmp_path / part_path("dicom_patient", "run1", "abc"))
    assert patients.schema.equals(arrow_schema(BY_NAME["dicom_patient"]))
    assert patients.column("_source_order").to_pylist() == ["order-0", "order-1", "order-2"]
    assert not list(tmp_path.rglob("*.tmp"))


def test_abort_leaves_no_file(tmp_path):
    writer = ShardWriter(OutputRoot.of(tmp_path), "run1", "abc")
    writer.add("dicom_patient", [{"patient_key": 1}], "o")
    writer._flush("dicom_patient")
    writer.abort()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]

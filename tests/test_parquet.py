import pyarrow.parquet as pq
import pytest

from loader.core.model import BY_NAME, arrow_schema
from loader.extract.elements import ELEMENT_COLUMNS
from loader.output.location import OutputRoot
from loader.output.parquet import ShardWriter, part_path


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


def test_shared_row_tuples_are_written_where_each_row_holds_them(tmp_path):
    shared = (0x0008, 0x0060, "00080060", "Modality", "CS", 1, "CT", None, None, None, False, None)
    equal_but_not_shared = (*shared[:6], "CT", None, None, None, False, None)
    other = (
        0x0009,
        0x1001,
        "00091001",
        "00091001",
        "LO",
        2,
        "a\\b",
        None,
        None,
        None,
        True,
        "ACME",
    )
    names = ELEMENT_COLUMNS[3:15]
    objects = [[shared, other], [equal_but_not_shared, shared], [other, other, shared]]
    writer = ShardWriter(OutputRoot.of(tmp_path), "run1", "abc")
    for n, tuples in enumerate(objects):
        places = [(None, None, None)] + [(1, 99, "52009230[0]")] * (len(tuples) - 1)
        writer.add(
            "dicom_element",
            {
                names: tuples,
                ("frame_number", "sequence_item_key", "sequence_path"): places,
                "element_key": [n * 10 + i for i in range(len(tuples))],
                "instance_key": [n] * len(tuples),
            },
            f"order-{n}",
        )
        if n == 0:
            writer._flush("dicom_element")  # a row group of its own, as a full buffer gets
    writer.close()
    table = pq.read_table(tmp_path / part_path("dicom_element", "run1", "abc"))
    assert table.schema.equals(arrow_schema(BY_NAME["dicom_element"]))
    written = table.to_pylist()
    expected = [t for tuples in objects for t in tuples]
    assert [tuple(row[name] for name in names) for row in written] == expected
    assert [row["element_key"] for row in written] == [0, 1, 10, 11, 20, 21, 22]
    assert [row["frame_number"] for row in written] == [None, 1, None, 1, None, 1, 1]
    assert [row["_source_order"] for row in written][-3:] == ["order-2"] * 3


def test_abort_leaves_no_file(tmp_path):
    writer = ShardWriter(OutputRoot.of(tmp_path), "run1", "abc")
    writer.add("dicom_patient", [{"patient_key": 1}], "o")
    writer._flush("dicom_patient")
    writer.abort()
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_unique_keys_go_without_a_dictionary_and_text_without_statistics(tmp_path):
    writer = ShardWriter(OutputRoot.of(tmp_path), "run1", "abc")
    writer.add(
        "dicom_sequence_item",
        {
            "sequence_item_key": [1, 2, 3],
            "instance_key": [9, 9, 9],
            "parent_element_key": [7, 7, 8],
            "item_index": [0, 1, 0],
            "sequence_path": ["00081140[0]", "00081140[1]", "00081150[0]"],
        },
        "order-0",
    )
    writer.close()
    path = tmp_path / part_path("dicom_sequence_item", "run1", "abc")
    chunks = pq.ParquetFile(path).metadata.row_group(0)
    by_name = {chunks.column(i).path_in_schema: chunks.column(i) for i in range(chunks.num_columns)}
    assert not by_name["sequence_item_key"].has_dictionary_page
    assert by_name["instance_key"].has_dictionary_page
    assert by_name["sequence_item_key"].statistics.min == 1
    assert by_name["item_index"].statistics.max == 1
    assert by_name["sequence_path"].statistics is None


def test_a_row_naming_a_column_the_model_lacks_fails_at_once():
    """A misspelled column must fail, not become a NULL column."""
    from loader.output.parquet import ArrowBuffers

    buffers = ArrowBuffers("run", "shard")
    buffers.add("dicom_patient", [{"patient_key": 1, "patient_nmae": "Doe^John"}], "o")
    with pytest.raises(KeyError, match="patient_nmae"):
        buffers.take("dicom_patient")

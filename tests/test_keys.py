import duckdb
import pytest

from loader.core.keys import key_of, key_of_text, keys_of_texts, sql_key

CASES = [
    ("1.2.840.113619.2.55.3.604688119.868.1249343483.504",),
    ("",),
    ("PAT000123", "HOSPITAL_A"),
    ("PAT000123", None),
    ("Yamada^Tarou=山田^太郎", "ISSUER"),
    ("2.25.1", 7),
]


@pytest.mark.parametrize("parts", CASES)
def test_python_key_equals_duckdb_sql(parts):
    placeholders = ["?" for _ in parts]
    sql = "SELECT " + sql_key("duckdb", *placeholders)
    params = [None if p is None else str(p) for p in parts]
    (from_sql,) = duckdb.connect().execute(sql, params).fetchone()
    assert from_sql == key_of(*parts)


def test_key_is_64_bit_and_spec_defined():
    # docs/MODEL.md "Keys": the lower 64 bits of the MD5, as hex digits 17-32
    import hashlib

    text = "1.2.3\\4"
    assert key_of("1.2.3", "4") == int(hashlib.md5(text.encode()).hexdigest()[16:], 16)
    assert 0 <= key_of("x") < 2**64


def test_null_part_is_empty_text():
    assert key_of("A", None) == key_of("A", "")
    assert key_of("A", None) != key_of("A")


def test_batched_keys_equal_one_by_one():
    prefix = "1.2.840.10008.5.1.4.1.1.2\\"
    suffixes = ["00080018", "52009230[0].00209111[0].00189074", "", "名前", "7FE00010"]
    keys = keys_of_texts(prefix, suffixes)
    assert keys == [key_of_text(prefix + s) for s in suffixes]
    assert all(type(k) is int for k in keys)
    assert keys_of_texts(prefix, []) == []

"""Binary COPY encoding (``db.copy_binary``) against PostgreSQL itself: what the server reads
back from the encoded stream equals the frame (NULLs, empty and non-ASCII text, every width)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import text

from db.load import copy_binary

COLUMNS = [("id", "int8"), ("name", "text"), ("n", "int4"), ("small", "int2"), ("x", "float8"),
           ("flag", "bool"), ("note", "text")]


def _frame(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    words = np.array(["", "a", "ÿé", "CXO J123456.7+123456", "x" * 300, "tab\there", "日本"])
    note = pd.Series(rng.choice(words, n), dtype="string")
    note[rng.random(n) < 0.2] = pd.NA
    name = pd.Series([f"src {i:0{1 + i % 7}d}" for i in range(n)], dtype="str")
    x = rng.normal(size=n)
    x[rng.random(n) < 0.1] = np.nan
    nn = pd.array(rng.integers(-2**31, 2**31 - 1, n), dtype="Int64")
    nn[rng.random(n) < 0.1] = pd.NA
    flag = pd.array(rng.random(n) < 0.5, dtype="boolean")
    flag[rng.random(n) < 0.1] = pd.NA
    return pd.DataFrame({"id": np.arange(n, dtype="int64"), "name": name, "n": nn,
                         "small": rng.integers(-2**15, 2**15 - 1, n), "x": x, "flag": flag,
                         "note": note})


@pytest.mark.parametrize("n, rows_per_part", [(1, 50_000), (5_000, 50_000), (5_000, 777)])
def test_server_reads_back_what_was_encoded(engine, n, rows_per_part):
    frame = _frame(n, seed=n + rows_per_part)
    # a slice whose Arrow arrays start at an offset, as copy_binary's parts do
    frame = pd.concat([_frame(3, 0), frame], ignore_index=True).iloc[3:]
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TEMP TABLE t (id bigint, name text, n integer, "
                             "small smallint, x double precision, flag boolean, note text) "
                             "ON COMMIT DROP")
        copy_binary(conn, "pg_temp.t", frame, COLUMNS, rows_per_part=rows_per_part)
        back = conn.execute(text("SELECT * FROM pg_temp.t ORDER BY id")).all()
    assert len(back) == n
    for row, (_, want) in zip(back, frame.iterrows(), strict=True):
        assert row.id == want["id"] and row.name == want["name"]
        assert row.small == want["small"]
        assert (row.n is None) if pd.isna(want["n"]) else row.n == want["n"]
        assert (row.x is None) if np.isnan(want["x"]) else row.x == want["x"]
        assert (row.flag is None) if pd.isna(want["flag"]) else row.flag == bool(want["flag"])
        assert (row.note is None) if pd.isna(want["note"]) else row.note == want["note"]

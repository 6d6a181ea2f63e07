"""``cscat sql`` runs one read-only statement and prints it as a table or CSV."""

import pytest

from cscat.cli import main
from db.queries import statement_count


def test_select_prints_an_aligned_table(db_url, capsys):
    assert main(["sql", "SELECT 1 AS one, 'x;y' AS text_col"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("|")[0].strip() == "one"
    assert out[2].split("|")[1].strip() == "x;y"
    assert out[-1] == "(1 row)"


def test_csv_format(db_url, capsys):
    assert main(["sql", "SELECT 1 AS a, NULL AS b, 'q,r' AS c", "--format", "csv"]) == 0
    assert capsys.readouterr().out == 'a,b,c\n1,,"q,r"\n'


@pytest.mark.parametrize("statement", [
    "DELETE FROM catalog.release",
    "CREATE TABLE catalog.sneaky (x int)",
    "UPDATE catalog.ingest_run SET status = 'failed'",
])
def test_write_statement_is_refused_with_a_clear_error(db_url, capsys, statement):
    assert main(["sql", statement]) == 2
    err = capsys.readouterr().err
    assert err.startswith("cscat: error: refused: cscat sql runs read-only queries")
    assert "Traceback" not in err


def test_a_second_statement_cannot_escape_the_read_only_transaction(db_url, capsys):
    assert main(["sql", "COMMIT; DROP TABLE catalog.rejected_row"]) == 2
    assert "exactly one read-only statement" in capsys.readouterr().err
    assert main(["sql", "SELECT count(*) FROM catalog.rejected_row"]) == 0


def test_sql_error_is_one_line(db_url, capsys):
    assert main(["sql", "SELECT * FROM catalog.no_such_table"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no_such_table" in err


@pytest.mark.parametrize("sql, n", [
    ("select 1", 1), ("select 1;", 1), ("select ';'", 1), ("select $$a;b$$", 1),
    ("select 1 -- ; drop\n", 1), ("select \"a;b\" from t", 1), ("select 1; select 2", 2),
    ("/* ; */ select 1", 1),
])
def test_statement_count(sql, n):
    assert statement_count(sql) == n

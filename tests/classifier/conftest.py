from pathlib import Path

import pandas as pd
import pytest

SHARED_CSV = (
    Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "csc21_sources_simbad.csv"
).resolve()


@pytest.fixture(scope="session")
def shared_csv_path() -> Path:
    if not SHARED_CSV.exists():
        pytest.skip(f"shared data file absent: {SHARED_CSV}")
    return SHARED_CSV


@pytest.fixture(scope="session")
def shared_csv(shared_csv_path) -> pd.DataFrame:
    return pd.read_csv(shared_csv_path)

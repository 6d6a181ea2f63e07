"""MJD conversions shared by the client, the sample and the fake services."""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import pandas as pd

MJD_EPOCH = date(1858, 11, 17)
UNIX_EPOCH_MJD = 40587.0


def mjd(day: date | datetime | str) -> float:
    """Modified Julian Date of the start of a day (or of a datetime)."""
    if isinstance(day, str):
        day = date.fromisoformat(day)
    if isinstance(day, datetime):
        return (day - datetime(1858, 11, 17, tzinfo=day.tzinfo)).total_seconds() / 86400.0
    return float((day - MJD_EPOCH).days)


def until_mjd(until: date | datetime | str | float) -> float:
    """Exclusive MJD bound for "up to ``until``": a date includes its whole day."""
    if isinstance(until, (int, float, np.floating, np.integer)):
        return float(until)
    if isinstance(until, str):
        until = date.fromisoformat(until)
    return mjd(until) + (0.0 if isinstance(until, datetime) else 1.0)


def mjd_to_date(values) -> pd.Series:
    """Calendar dates (datetime64, midnight) of MJD values."""
    return pd.Series(pd.to_datetime(np.asarray(values, float) - UNIX_EPOCH_MJD, unit="D"))\
        .dt.normalize()

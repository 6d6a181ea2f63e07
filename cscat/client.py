"""The Python client: the catalog as astropy Tables (or pandas), read-only, as of a version.

>>> from cscat import Catalog
>>> cat = Catalog()                        # cscat's configured database, read-only role
>>> cat.source("2CXO J061108.4+201602")   # its classification (a one-row Table)
>>> cat.cone(92.78, 20.27, 2 * u.arcmin)  # sources within 2', nearest first
>>> cat.query("select agg_adopted_class, count(*) from catalog.source_class group by 1")
>>> Catalog(as_of=1).cone(92.78, 20.27, 0.05)  # as published in catalog version 1

Every column carries the unit, UCD and description of the database's column comments.
"""

from __future__ import annotations

import psycopg

from db import vo
from db.column_docs import VIEWS


class Catalog:
    """Read-only access to a cscat catalog.

    ``url``: a libpq URL of a read-only login (``postgresql://user:pw@host/db``); None: the
    catalog cscat is configured for, as the read-only role ``cscat_reader``. ``as_of``: a
    catalog version (None: the current one); classifications are those it published.
    """

    def __init__(self, url: str | None = None, as_of: int | None = None) -> None:
        self.url = url
        self._conn: psycopg.Connection | None = None
        self.as_of = None if as_of is None else vo.check_version(self._connection(),
                                                                 int(as_of))

    # -- connection --------------------------------------------------------------------------
    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            if self.url is None:
                from db.engine import reader_connection

                self._conn = reader_connection()
            else:
                from db.engine import sqlalchemy_url

                libpq = sqlalchemy_url(self.url, "url").set(drivername="postgresql")
                self._conn = psycopg.connect(libpq.render_as_string(hide_password=False))
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- queries -----------------------------------------------------------------------------
    def version(self) -> int:
        """The catalog version this client reads (``as_of``, else the current one)."""
        return self.as_of if self.as_of is not None else vo.check_version(
            self._connection(), None)

    def source(self, name: str, *, as_pandas: bool = False):
        """One source's classification (a one-row Table); LookupError if there is none."""
        view = ("catalog.source_class" if self.as_of is None
                else "catalog.source_class_as_of(%(version)s)")
        frame = vo.fetch(self._connection(), f"SELECT * FROM {view} WHERE name = %(name)s",
                         {"name": str(name), "version": self.as_of})
        if frame.empty:
            raise LookupError(f"no classified source named {name!r} in catalog version "
                              f"{self.version()}")
        return frame if as_pandas else vo.to_table(frame, VIEWS["source_class_history"])

    def cone(self, ra, dec, radius, *, as_pandas: bool = False):
        """Sources within ``radius`` (astropy Quantity, or degrees) of (``ra``, ``dec``)
        (ICRS; Quantity or degrees), nearest first, every column (``dist`` in degrees)."""
        table = vo.cone(self._connection(), _deg(ra), _deg(dec), _deg(radius), verb=3,
                        version=self.as_of)
        return table.to_pandas() if as_pandas else table

    def query(self, sql: str, *, as_pandas: bool = False):
        """One read-only SQL statement (no parameters); columns named like a view's
        column get its unit and description."""
        frame = vo.fetch(self._connection(), sql)
        return frame if as_pandas else vo.to_table(frame, vo.view_docs(list(frame.columns)))


def _deg(value) -> float:
    """Degrees from an astropy Quantity (angle), or a plain number taken as degrees."""
    unit = getattr(value, "unit", None)
    if unit is not None:
        from astropy import units as u

        return float(value.to_value(u.deg))
    return float(value)

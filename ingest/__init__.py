"""Network and file side of cscat ingest: CSC TAP, SIMBAD crossmatch, files, validation.

No database access here: ``db`` and ``flows`` call these functions and store what they return.
"""

from ingest.errors import IngestError

__all__ = ["IngestError"]

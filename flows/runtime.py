"""Prefect settings cscat applies before Prefect is imported (unless the user set them)."""

from __future__ import annotations

import os

from db.settings import get_settings


def configure_prefect() -> None:
    """Keep Prefect's state beside cscat's data, quiet and offline-friendly.

    With no ``PREFECT_API_URL``, Prefect runs flows against a temporary local server whose
    database lives in ``<data_dir>/prefect``. Set ``PREFECT_API_URL`` to use a Prefect
    server (and workers) of your own.
    """
    home = get_settings().data_dir / "prefect"
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "pipeline,ingest,db",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)

"""Steps of the catalog pipeline: plain functions over ``db``, ``ingest`` and ``classifier``."""

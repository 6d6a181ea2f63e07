"""The one error type ingest raises for anything a caller should report and not retry."""


class IngestError(RuntimeError):
    """A fetch, read or parse failed; the message names the URL or file, the part, the cause."""

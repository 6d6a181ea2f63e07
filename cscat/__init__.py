"""cscat: a living classification catalog of Chandra X-ray sources.

``from cscat import Catalog`` gives the Python client (:class:`cscat.client.Catalog`); it is
imported on first use, so ``cscat --version`` does not pay for astropy and pandas.
"""

__all__ = ["Catalog"]


def __getattr__(name: str):
    if name == "Catalog":
        from cscat.client import Catalog

        return Catalog
    raise AttributeError(f"module 'cscat' has no attribute {name!r}")

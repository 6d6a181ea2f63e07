"""The web side of cscat: the explorer (``cscat web``, read-only, every asset served locally)
and the VO endpoints (``web.scs``: IVOA Simple Cone Search)."""

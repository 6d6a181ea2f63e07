"""The web side of cscat: the explorer and the VO endpoints (``web.scs``)."""

"""The web explorer over the catalog (``cscat web``): read-only, every asset served locally."""

"""Print the validation report for a CSV of CSC detections with SIMBAD types.

Usage::

    python -m classifier.validate_file PATH [--features F ...] [--label-column simbad_otype]
        [--n-components 6] [--random-state 42] [--json OUT.json]

Labels come from the SIMBAD type column through :func:`classifier.simbad_to_class`; derived
features (var_ratio_*, var_newq_b) are computed when their CSC inputs are present. Without
``--features`` the 12 default features are used, or the 11 without ``var_newq_b`` when the
file lacks it.
"""

from __future__ import annotations

import argparse
import json
import sys

import pandas as pd

from .features import DEFAULT_FEATURES, FEATURES_NO_NEWQ, derive_features
from .taxonomy import simbad_to_class
from .validation import format_report, validate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m classifier.validate_file", description=__doc__)
    ap.add_argument("path")
    ap.add_argument("--features", nargs="+", default=None)
    ap.add_argument("--label-column", default="simbad_otype")
    ap.add_argument("--n-components", type=int, default=6)
    ap.add_argument("--random-state", type=int, default=42, help="GMM and split seed")
    ap.add_argument("--test-size", type=float, default=0.3)
    ap.add_argument("--json", default=None, help="also write the report as JSON here")
    args = ap.parse_args(argv)

    df = derive_features(pd.read_csv(args.path))
    if args.label_column not in df.columns:
        ap.error(f"label column {args.label_column!r} not in file")
    features = args.features
    if features is None:
        features = DEFAULT_FEATURES if "var_newq_b" in df.columns else FEATURES_NO_NEWQ
    y = simbad_to_class(df[args.label_column])
    report = validate(
        df,
        y,
        test_size=args.test_size,
        random_state=args.random_state,
        features=features,
        n_components=args.n_components,
    )
    print(format_report(report))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=1, allow_nan=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

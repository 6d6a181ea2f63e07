import pandas as pd

from classifier import (
    AGG_CLASSES,
    AGGREGATION,
    CLASSES,
    OtypeKind,
    aggregate,
    classify_otype,
    otype_kind,
    simbad_to_class,
)


def test_classes_and_aggregation():
    assert CLASSES == [
        "QSO", "AGN", "Seyfert_1", "Seyfert_2", "HMXB", "LMXB", "XB", "YSO", "TTau*", "Orion_V*"
    ]  # fmt: skip
    assert set(AGGREGATION) == set(CLASSES)
    assert set(AGGREGATION.values()) == set(AGG_CLASSES)
    assert list(aggregate(pd.Series(["TTau*", None, "Seyfert_2"])).fillna("-")) == [
        "YSO", "-", "Seyfert"
    ]  # fmt: skip


def test_long_short_and_2022_labels():
    long = ["QSO", "AGN", "Seyfert1", "Seyfert2", "HighMassXBin", "LowMassXBin", "XrayBin",
            "YSO", "TTauri*", "OrionV*"]  # fmt: skip
    short = ["QSO", "AGN", "Sy1", "Sy2", "HXB", "LXB", "XB", "Y*O", "TT*", "Or*"]
    for labels in (long, short, CLASSES):
        got = simbad_to_class(pd.Series(labels))
        assert list(got) == CLASSES
        assert (otype_kind(pd.Series(labels)) == "reference").all()


def test_uninformative_other_and_missing():
    unl = ["Star", "*", "X", "Radio", "Rad", "IR", "Infrared", "Blue", "blue", "blu", "UV",
           "gamma", "gam", "PartofG", "PoG", "**", None, "", "  "]  # fmt: skip
    s = pd.Series(unl, dtype="object")
    assert (otype_kind(s) == "unlabeled").all()
    assert simbad_to_class(s).isna().all()
    other = ["CataclyV*", "Pulsar", "QSO_Candidate", "Y*?", "GlobCluster", "Galaxy", "ULX", "?"]
    assert (otype_kind(pd.Series(other)) == "other").all()
    assert simbad_to_class(pd.Series(other)).isna().all()
    assert classify_otype(" OrionV* ") is OtypeKind.REFERENCE
    assert classify_otype(None) is OtypeKind.UNLABELED
    assert classify_otype("CV*") is OtypeKind.OTHER


def test_shared_file_counts(shared_csv):
    k = otype_kind(shared_csv.simbad_otype).value_counts()
    assert k["reference"] == 9759 and k["unlabeled"] == 2934 and k["other"] == 3013

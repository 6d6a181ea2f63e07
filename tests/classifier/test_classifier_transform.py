import numpy as np
import pandas as pd
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from classifier import FeatureTransform, derive_features

FEATS = ["k", "g", "h"]


def fitted(A):
    t = FeatureTransform(FEATS, ["k"], ["g"])
    reasons = t.fit(A)
    return t, reasons


# zeros and realistic positive magnitudes (a subnormal m would make m/10 == 0)
finite = st.one_of(st.just(0.0), st.floats(1e-6, 1e6, allow_nan=False, allow_infinity=False))
columns = arrays(np.float64, st.tuples(st.integers(2, 60), st.just(3)), elements=finite)


@given(columns)
@settings(max_examples=200, deadline=None)
def test_fit_data_in_unit_interval_and_monotone(A):
    assume(np.any(A[:, 0] != 0))
    t, reasons = fitted(A)
    assert all(r is None for r in reasons)  # non-negative data: log always defined
    T = t.transform(A)
    for j in (0, 1):
        assert T[:, j].min() >= 0 and T[:, j].max() <= 1 + 1e-12
        order = np.argsort(A[:, j], kind="stable")
        assert np.all(np.diff(T[order, j]) >= -1e-12)  # monotone non-decreasing
        if np.ptp(A[:, j]) > 0 and np.ptp(T[:, j]) > 0:
            assert T[:, j].min() == 0 and T[:, j].max() == pytest.approx(1)
    np.testing.assert_array_equal(T[:, 2], A[:, 2])  # unchanged feature


@given(columns)
@settings(max_examples=200, deadline=None)
def test_offset_is_smallest_nonzero_over_ten_and_zeros_are_fine(A):
    A = A.copy()
    A[0, 0] = 0.0
    assume(np.any(A[:, 0] != 0))
    t, reasons = fitted(A)
    m = A[:, 0][A[:, 0] != 0].min()
    assert t.offset_[0] == m / 10
    T = t.transform(A)
    assert np.isfinite(T).all()
    # inverse: undo min-max and log to recover the input
    back = np.exp(T[:, 0] * t.range_[0] + t.min_[0]) - t.offset_[0]
    np.testing.assert_allclose(back, A[:, 0], rtol=1e-6, atol=1e-9 * max(1, A[:, 0].max()))


@given(columns, arrays(np.float64, st.tuples(st.integers(1, 20), st.just(3)), elements=finite))
@settings(max_examples=200, deadline=None)
def test_new_data_transformed_like_fit_data(A, B):
    assume(np.any(A[:, 0] != 0))
    t, _ = fitted(A)
    both = t.transform(np.vstack([A, B]))
    np.testing.assert_array_equal(both[: len(A)], t.transform(A))
    np.testing.assert_array_equal(both[len(A) :], t.transform(B))
    # serialization gives the same transform, bit for bit
    t2 = FeatureTransform.from_dict(t.to_dict())
    np.testing.assert_array_equal(t2.transform(B), t.transform(B))


def test_invalid_rows_reported_and_excluded_from_fit():
    A = np.array(
        [[1.0, 2.0, 0.0], [np.nan, 1.0, 0.0], [2.0, np.inf, 0.0], [4.0, 3.0, 1.0], [-5, 1, 0]]
    )
    t, reasons = fitted(A)
    assert reasons[0] is None and reasons[3] is None
    assert reasons[1] == "invalid features: k is NaN"
    assert reasons[2] == "invalid features: g is inf"
    assert "k + " in reasons[4] and "log undefined" in reasons[4]
    # m = smallest positive finite value of the valid rows = 1 -> offset 0.1
    assert t.offset_[0] == 0.1
    assert t.min_[1] == 2.0 and t.range_[1] == 1.0
    r = t.validate(np.array([[-0.1, 1.0, 0.0], [-0.09, 1.0, 0.0]]))
    assert r[0] is not None and r[1] is None  # new data: x + 0.1 <= 0 is invalid


def test_constant_feature_does_not_divide_by_zero():
    A = np.array([[1.0, 3.0, 0.0], [1.0, 3.0, 1.0]])
    t, _ = fitted(A)
    T = t.transform(A)
    assert np.isfinite(T).all() and (T[:, :2] == 0).all()


def test_derive_features():
    df = pd.DataFrame(
        {
            "var_sigma_b": [1.0, 2.0, 1.0],
            "var_mean_b": [2.0, 0.0, np.nan],
            "var_sigma_h": [3.0, 3.0, 3.0],
            "var_mean_h": [1.5, 3.0, 6.0],
            "var_max_b": [4.0, 1.0, 1.0],
            "var_min_b": [2.0, 1.0, 1.0],
        }
    )
    out = derive_features(df)
    np.testing.assert_array_equal(out.var_ratio_b, [0.5, np.nan, np.nan])
    np.testing.assert_array_equal(out.var_ratio_h, [2.0, 1.0, 0.5])
    np.testing.assert_array_equal(out.var_newq_b, [1.5, np.nan, np.nan])
    assert "var_ratio_s" not in out.columns  # inputs absent
    assert "var_ratio_b" not in df.columns  # input not modified


def test_combined_reason_and_many_invalid_rows_vectorized():
    t = FeatureTransform(FEATS, ["k"], ["g"])
    t.fit(np.array([[1.0, 1.0, 0.0], [2.0, 2.0, 1.0]]))
    A = np.tile(np.array([[-1.0, np.nan, 0.0], [1.0, 1.0, -np.inf], [1.0, 1.0, 1.0]]), (50_000, 1))
    r = t.validate(A)
    assert r[0] == "invalid features: g is NaN, k + 0.1 <= 0 (log undefined)"
    assert r[1] == "invalid features: h is -inf"
    assert r[2] is None
    assert (r[0::3] == r[0]).all() and (r[1::3] == r[1]).all()


def test_no_valid_row_names_the_missing_feature_not_a_log_feature():
    """Real CSC 2.1 rows have no var_newq_b: the error says so (not 'bb_kt has no positive
    finite value', which it said when every row was invalid)."""
    t = FeatureTransform(["bb_kt", "hard_hm", "var_newq_b"], ["bb_kt", "var_newq_b"], [])
    A = np.array([[0.5, 0.1, np.nan], [0.7, np.nan, np.nan], [0.9, 0.3, np.nan]])
    with pytest.raises(ValueError) as err:
        t.fit(A)
    assert str(err.value) == ("no row has all 3 features finite: var_newq_b is not finite in 3 "
                              "of 3 rows, hard_hm is not finite in 1 of 3 rows")

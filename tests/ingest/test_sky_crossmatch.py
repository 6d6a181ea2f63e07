"""The k-d tree crossmatch (``ingest.sky.SkyIndex``) against a brute-force oracle and the
Dec sweep it replaced: the same pairs, the same separations, the same order."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ingest.sky import SkyIndex, crossmatch, separation_arcsec


def brute_force(ra1, dec1, ra2, dec2, radius):
    """Every pair by the full separation matrix; ordered by i1, then cat2's stable Dec order."""
    sep = separation_arcsec(ra1[:, None], dec1[:, None], ra2[None, :], dec2[None, :])
    i1, i2 = np.nonzero(sep <= radius)
    rank = np.empty(len(ra2), dtype=np.int64)
    rank[np.argsort(dec2, kind="stable")] = np.arange(len(ra2))
    order = np.lexsort((rank[i2], i1))
    return i1[order], i2[order], sep[i1[order], i2[order]]


def crossmatch_sweep(ra1, dec1, ra2, dec2, radius_arcsec: float):
    """All pairs (i1, i2, sep_arcsec) with separation <= radius; sweep over Dec-sorted cat2:
    the crossmatch SkyIndex replaced, kept as the reference of its pairs and order (by
    ``i1``, then by cat2's place in its stable Dec order)."""
    ra1, dec1 = np.asarray(ra1, float), np.asarray(dec1, float)
    ra2, dec2 = np.asarray(ra2, float), np.asarray(dec2, float)
    order = np.argsort(dec2, kind="stable")
    d2 = dec2[order]
    r_deg = radius_arcsec / 3600.0
    lo = np.searchsorted(d2, dec1 - r_deg, "left")
    hi = np.searchsorted(d2, dec1 + r_deg, "right")
    n = hi - lo
    i1 = np.repeat(np.arange(len(ra1)), n)
    offsets = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    i2 = order[np.repeat(lo, n) + offsets]
    sep = separation_arcsec(ra1[i1], dec1[i1], ra2[i2], dec2[i2])
    keep = sep <= radius_arcsec
    return i1[keep], i2[keep], sep[keep]


def sky(rng, n, clustered=None):
    """Uniform on the sphere, plus points at the poles, on RA 0/360 and duplicates."""
    ra = rng.uniform(0, 360, n)
    dec = np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    extra_ra = np.array([0.0, 359.99999, 0.00001, 120.0, 300.0, 10.0, 10.0])
    extra_dec = np.array([0.0, 0.0, 0.0, 89.9999, -89.9999, 45.0, 45.0])
    return np.r_[ra, extra_ra], np.r_[dec, extra_dec]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("radius", [2.0, 30.0, 600.0])
def test_same_pairs_and_order_as_brute_force_and_sweep(seed, radius):
    rng = np.random.default_rng(seed)
    ra2, dec2 = sky(rng, 3000)
    # queries near catalogue points (within a few radii), on the edges and anywhere
    pick = rng.integers(0, len(ra2), 400)
    off = radius / 3600.0 * 3
    ra1 = np.r_[(ra2[pick] + rng.uniform(-off, off, 400)) % 360, 0.0, 359.9999, 200.0]
    dec1 = np.r_[np.clip(dec2[pick] + rng.uniform(-off, off, 400), -90, 90), 0.0, 0.0, 90.0]
    want = brute_force(ra1, dec1, ra2, dec2, radius)
    index = SkyIndex(ra2, dec2)
    for got in (index.pairs(ra1, dec1, radius), crossmatch(ra1, dec1, ra2, dec2, radius),
                crossmatch_sweep(ra1, dec1, ra2, dec2, radius)):
        assert len(got[0]) == len(want[0]) > 0
        np.testing.assert_array_equal(got[0], want[0])
        np.testing.assert_array_equal(got[1], want[1])
        np.testing.assert_array_equal(got[2], want[2])


def test_pairs_exactly_on_the_radius_are_kept():
    ra2, dec2 = np.array([10.0, 10.0, 10.0]), np.array([20.0, 20.0 + 5 / 3600, 20.0 + 6 / 3600])
    sep = separation_arcsec(10.0, 20.0, ra2, dec2)
    i1, i2, s = SkyIndex(ra2, dec2).pairs(np.array([10.0]), np.array([20.0]), float(sep[1]))
    assert list(i2) == [0, 1] and list(s) == list(sep[:2])


def test_index_is_reused_across_chunks():
    rng = np.random.default_rng(5)
    ra2, dec2 = sky(rng, 2000)
    index = SkyIndex(ra2, dec2)
    ra1, dec1 = ra2[:600] + 1e-3, dec2[:600]
    whole = index.pairs(ra1, dec1, 10.0)
    parts = [index.pairs(ra1[s:s + 100], dec1[s:s + 100], 10.0) for s in range(0, 600, 100)]
    np.testing.assert_array_equal(whole[0], np.concatenate(
        [p[0] + s for p, s in zip(parts, range(0, 600, 100), strict=True)]))
    np.testing.assert_array_equal(whole[1], np.concatenate([p[1] for p in parts]))


def test_empty_inputs():
    empty = np.zeros(0)
    assert all(len(x) == 0 for x in SkyIndex(empty, empty).pairs([1.0], [2.0], 5.0))
    assert all(len(x) == 0 for x in SkyIndex([1.0], [2.0]).pairs(empty, empty, 5.0))


def test_sample_counterparts_match_the_sweep():
    """SampleCounterparts (cached index) gives what the sweep over each catalogue gives."""
    from ingest.counterparts import CATALOGUES
    from ingest.sample import generate_sample
    from ingest.sample_counterparts import SampleCounterparts, sample_counterparts

    sample = generate_sample(n_detections=1500, seed=3)
    sc = SampleCounterparts(sample)
    src = sample.sources[["name", "ra", "dec"]]
    first = pd.concat([sc.neighbours(src.iloc[:300]), sc.neighbours(src.iloc[300:])],
                      ignore_index=True)
    for name, obj in sample_counterparts(sample).items():
        cat = CATALOGUES[name]
        i1, i2, sep = crossmatch_sweep(src["ra"].to_numpy(), src["dec"].to_numpy(),
                                       obj[cat.ra_col].to_numpy(), obj[cat.dec_col].to_numpy(),
                                       sc.radius)
        got = first[first["catalogue"] == name]
        assert len(got) == len(i1) > 0
        # chunk by chunk, each chunk's pairs in the sweep's order
        order = np.r_[np.flatnonzero(i1 < 300), np.flatnonzero(i1 >= 300)]
        np.testing.assert_array_equal(got["name"].to_numpy(str),
                                      src["name"].to_numpy(str)[i1[order]])
        np.testing.assert_array_equal(got["cp_id"].to_numpy(str),
                                      obj[cat.id_col].astype(str).to_numpy()[i2[order]])
        np.testing.assert_array_equal(got["separation_arcsec"].to_numpy(float), sep[order])

"""Row-chunked, thread-parallel helpers (results per row do not depend on the chunking)."""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from sklearn.mixture import GaussianMixture
from sklearn.mixture._gaussian_mixture import _compute_precision_cholesky
from threadpoolctl import threadpool_limits


def n_workers(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs <= 0:
        return max(os.cpu_count() or 1, 1)
    return int(n_jobs)


def map_chunks(fn: Callable[[int, int], object], n: int, chunk: int, n_jobs: int | None) -> list:
    """Call ``fn(start, stop)`` for consecutive row chunks, in threads; results in order.

    BLAS is limited to one thread per worker: on tall-skinny (n x 12) products the row-parallel
    threads are faster than BLAS' own threading and do not oversubscribe the cores.
    """
    chunk = max(int(chunk), 1)
    bounds = [(s, min(s + chunk, n)) for s in range(0, n, chunk)]
    workers = min(n_workers(n_jobs), max(len(bounds), 1))
    with threadpool_limits(limits=1, user_api="blas"):
        if workers <= 1:
            return [fn(s, e) for s, e in bounds]
        with ThreadPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(lambda b: fn(*b), bounds))


class ChunkedGaussianMixture(GaussianMixture):
    """``GaussianMixture`` whose E-step runs on row chunks in parallel threads.

    The E-step is row-wise (log-densities, log-sum-exp and log-responsibilities of one row do not
    depend on other rows), so each row gets the same computation as in ``GaussianMixture``;
    the M-step is scikit-learn's own. Set ``_chunk``/``_n_jobs`` after construction.
    """

    _chunk = 65_536
    _n_jobs: int | None = None

    def _estimate_log_prob_resp(self, X, xp=None):
        n = X.shape[0]
        if n <= self._chunk or n_workers(self._n_jobs) <= 1:
            return super()._estimate_log_prob_resp(X, xp=xp)
        parent = super()._estimate_log_prob_resp
        parts = map_chunks(lambda s, e: parent(X[s:e]), n, self._chunk, self._n_jobs)
        return (
            np.concatenate([p[0] for p in parts]),
            np.concatenate([p[1] for p in parts]),
        )

    def _m_step(self, X, log_resp, xp=None):
        # scikit-learn's M-step for 'full' covariances, operation for operation, with the
        # per-component covariance products run in parallel threads.
        if self.covariance_type != "full" or not isinstance(X, np.ndarray):
            return super()._m_step(X, log_resp, xp=xp)
        resp = np.exp(log_resp)
        nk = np.sum(resp, axis=0) + 10 * np.finfo(resp.dtype).eps
        means = (resp.T @ X) / nk[:, np.newaxis]
        n_components, n_features = means.shape
        covariances = np.empty((n_components, n_features, n_features), dtype=X.dtype)

        def one(k: int) -> None:
            diff = X - means[k, :]
            covariances[k, :, :] = ((resp[:, k] * diff.T) @ diff) / nk[k]
            covariances[k].flat[:: n_features + 1] += self.reg_covar

        workers = min(n_workers(self._n_jobs), n_components)
        if workers <= 1:
            for k in range(n_components):
                one(k)
        else:
            with ThreadPoolExecutor(max_workers=workers) as pool:
                list(pool.map(one, range(n_components)))
        self.weights_, self.means_, self.covariances_ = nk, means, covariances
        self.weights_ /= np.sum(self.weights_)
        self.precisions_cholesky_ = _compute_precision_cholesky(self.covariances_, "full")


def fit_gmm(Z: np.ndarray, n_components: int, random_state, n_jobs: int | None) -> GaussianMixture:
    """Fit ``GaussianMixture(n_components, covariance_type='full', random_state)`` on ``Z``."""
    g = ChunkedGaussianMixture(
        n_components=n_components, covariance_type="full", random_state=random_state
    )
    g._n_jobs = n_jobs
    with threadpool_limits(limits=1, user_api="blas"):
        g.fit(Z)
    return g

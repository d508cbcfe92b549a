"""SISA aggregation: the stacked fast path agrees with scikit-learn shard by shard, and a
sparse shard fitted on its active columns is the model fitted on all of them."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from commonweal.ml.sisa import ShardedModel, fit_shard
from commonweal.ml.trainers import get_trainer, hashing_features


def slow_average(shards: list[Any], labels: list[str], X: Any) -> Any:
    total = np.zeros((X.shape[0], len(labels)))
    for s in shards:
        cols = [labels.index(str(c)) for c in s.classes_]
        total[:, cols] += s.predict_proba(X)
    return total / len(shards)


@pytest.mark.parametrize("n_labels", [2, 4])
@pytest.mark.parametrize("as_sparse", [False, True])
def test_stacked_linear_shards_predict_what_scikit_learn_does(
    n_labels: int, as_sparse: bool
) -> None:
    rng = np.random.default_rng(n_labels)
    labels = [f"c{i}" for i in range(n_labels)]
    X = rng.random((240, 30))
    X[X < 0.7] = 0.0  # mostly zeros, like hashed text
    y = np.array(labels)[(X[:, :n_labels].argmax(axis=1))]
    Xs: Any = sparse.csr_matrix(X) if as_sparse else X
    trainer = get_trainer("linear", "tabular-classification")
    shards = []
    for k in range(4):
        rows = np.arange(len(y)) % 4 == k
        if k == 3:  # a shard that saw only some labels, and one that saw one label
            rows &= np.isin(y, labels[:2])
        shards.append(
            fit_shard(trainer, "tabular-classification", Xs[rows], y[rows], seed=0, shard=k)
        )
    lone = fit_shard(
        trainer, "tabular-classification", Xs[:5], np.array(["c1"] * 5), seed=0, shard=9
    )
    shards.append(lone)
    model = ShardedModel(shards, labels)
    np.testing.assert_allclose(
        model.predict_proba(Xs), slow_average(shards, labels, Xs), atol=1e-12
    )


def test_a_sparse_shard_fitted_on_its_active_columns_is_the_full_fit() -> None:
    texts = [f"river {w} flood bank {i}" for i, w in enumerate(["rain", "mill"] * 40)]
    texts += [f"market {w} bread price {i}" for i, w in enumerate(["stall", "coin"] * 40)]
    y = np.array(["river"] * 80 + ["market"] * 80)
    X = hashing_features(texts)
    trainer = get_trainer("hashing-logreg", "text-classification")
    fast = fit_shard(trainer, "text-classification", X, y, seed=0, shard=0)
    full = LogisticRegression(C=10.0, max_iter=1000, random_state=fast.random_state).fit(X, y)
    assert fast.coef_.shape == full.coef_.shape and fast.n_features_in_ == X.shape[1]
    np.testing.assert_allclose(fast.coef_, full.coef_, atol=1e-5)
    np.testing.assert_allclose(fast.predict_proba(X), full.predict_proba(X), atol=1e-6)

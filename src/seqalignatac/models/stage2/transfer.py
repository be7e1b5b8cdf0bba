"""Label transfer on the cell embedding and the final mix: kNN votes (optionally class-balanced) and a
class-balanced logistic regression, mixed with the GDA ensemble's probabilities
(``(1 - w - v) GDA + w kNN + v logistic regression``)."""

from __future__ import annotations

import warnings

import numpy as np

from seqalignatac.models.stage2.graphs import EXACT_MAX_CELLS, clip_k, l2_normalize, neighbour_votes
from seqalignatac.models.stage2.inputs import ReferenceSet
from seqalignatac.models.stage2.train import GDAConfig


def knn_transfer(
    x_ref: np.ndarray,
    y_ref: np.ndarray,
    train_mask: np.ndarray,
    held: np.ndarray,
    x_query: np.ndarray,
    n_classes: int,
    knn_k: int,
    threads: int | None,
    vote_power: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """kNN label transfer (cosine, vote fractions): (query proba, held-out proba, k used).

    ``vote_power`` > 0 divides each class's vote fraction by the class's number of training cells
    to that power, then renormalises (0.5: by its square root; 1: fully class-balanced votes), so
    rare classes are not out-voted by large neighbours.
    """
    from sklearn.neighbors import KNeighborsClassifier

    kk = clip_k(knn_k, int(train_mask.sum()) + 1, "reference")
    xr = l2_normalize(x_ref)
    q_proba = np.zeros((x_query.shape[0], n_classes), dtype=np.float32)
    held_proba = np.zeros((int(held.sum()), n_classes), dtype=np.float32)
    if int(train_mask.sum()) > EXACT_MAX_CELLS:
        # Approximate neighbours for atlas-sized references, as for the graphs.
        votes = neighbour_votes(
            xr[train_mask], y_ref[train_mask], np.vstack([x_query, xr[held]]), max(kk, 1), n_classes, threads=threads
        )
        q_proba, held_proba = votes[: x_query.shape[0]], votes[x_query.shape[0] :]
    else:
        clf = KNeighborsClassifier(n_neighbors=max(kk, 1), n_jobs=threads)
        clf.fit(xr[train_mask], y_ref[train_mask])
        cols = clf.classes_
        q_proba[:, cols] = clf.predict_proba(l2_normalize(x_query))
        if held.any():
            held_proba[:, cols] = clf.predict_proba(xr[held])
    if vote_power > 0:
        counts = np.bincount(y_ref[train_mask], minlength=n_classes).astype(np.float64)
        scale = 1.0 / np.maximum(counts, 1.0) ** float(vote_power)
        q_proba, held_proba = (_rescale(p, scale) for p in (q_proba, held_proba))
    return q_proba, held_proba, int(kk)


def _rescale(proba: np.ndarray, scale: np.ndarray) -> np.ndarray:
    p = proba * scale[None, :].astype(np.float32)
    return (p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def fit_linear(ref: ReferenceSet, c: float = 1.0) -> dict[str, np.ndarray]:
    """Class-balanced multinomial logistic regression on the training cells' input embedding:
    ``classes`` (class indices), and ``coef`` and ``intercept`` unless a single class was trained on."""
    from sklearn.linear_model import LogisticRegression

    yt = ref.y_train
    if np.unique(yt).size < 2:  # one class: logistic regression is undefined, all mass on it
        return {"classes": np.unique(yt).astype(np.int64)}
    clf = LogisticRegression(C=float(c), class_weight="balanced", max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence notices
        clf.fit(ref.x_train, yt)
    # Fortran order, as scikit-learn's lbfgs leaves coef_ (so no copy here): a loaded model is put
    # in the same layout, and BLAS then gives the same last bits (docs/stage2.md, Outputs).
    return {"classes": clf.classes_.astype(np.int64), "coef": np.asfortranarray(clf.coef_), "intercept": clf.intercept_}


def linear_proba(params: dict[str, np.ndarray], x: np.ndarray, n_classes: int) -> np.ndarray:
    """Class probabilities of the logistic regression :func:`fit_linear` returned."""
    from sklearn.linear_model import LogisticRegression

    proba = np.zeros((x.shape[0], n_classes), dtype=np.float32)
    if "coef" not in params:
        proba[:, params["classes"]] = 1.0
        return proba
    if x.shape[0]:
        clf = LogisticRegression()
        clf.classes_, clf.coef_, clf.intercept_ = params["classes"], params["coef"], params["intercept"]
        proba[:, params["classes"]] = clf.predict_proba(x)
    return proba


def class_probabilities(
    method: str,
    config: GDAConfig,
    ref: ReferenceSet,
    x_query: np.ndarray,
    n_classes: int,
    knn_k: int,
    threads: int | None,
    gda: tuple[np.ndarray, np.ndarray] | None = None,
    linear: dict[str, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, dict]:
    """(query, held-out reference) class probabilities and the kNN size used.

    ``knn``: kNN label transfer alone.  ``gda``: ``(1 - w - v) GDA + w kNN + v logistic regression``
    (``w = config.knn_mix``, ``v = config.linear_mix``; kNN is strong in-domain, GDA across the
    shift, logistic regression on rare classes), ``gda`` = the ensemble's (query, held-out) probabilities.
    """
    x_all, y_all, train, held = ref.stacked()
    if method == "knn":
        q, h, kk = knn_transfer(x_all, y_all, train, held, x_query, n_classes, knn_k, threads)
        return q, h, {"knn_k": int(kk)}
    w, v = float(config.knn_mix), float(config.linear_mix)
    g = max(0.0, 1.0 - w - v)  # max: rounding when w + v = 1
    assert gda is not None  # method "gda": the callers pass the ensemble's probabilities
    q, h = g * gda[0], g * gda[1]
    if w > 0:
        kq, kh, _ = knn_transfer(
            x_all,
            y_all,
            train,
            held,
            x_query,
            n_classes,
            config.knn_mix_k or knn_k,
            threads,
            vote_power=config.knn_vote_power,
        )
        q, h = q + w * kq, h + w * kh
    if v > 0:
        assert linear is not None  # the callers fit it whenever linear_mix > 0
        q = q + v * linear_proba(linear, x_query, n_classes)
        h = h + v * linear_proba(linear, ref.x_held, n_classes)
    return q, h, {}

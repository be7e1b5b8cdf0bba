"""seqalignatac.metrics.evaluate: the one scoring path used by annotate, evaluate and the report."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from seqalignatac.metrics import evaluate, summary_dict


def test_accuracy_macro_f1_over_truth_classes():
    y_true = ["a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "b", "b", "b", "d", "Unknown"]  # "d" is a class the truth lacks
    r = evaluate(y_true, y_pred)
    assert r["accuracy"] == pytest.approx(3 / 6)
    # Macro-F1 averages over a, b, c only (classes present in the truth).
    expected = f1_score(y_true, y_pred, labels=["a", "b", "c"], average="macro", zero_division=0)
    assert r["macro_f1"] == pytest.approx(expected)
    assert r["macro_f1"] == pytest.approx((2 / 3 + 0.8 + 0.0) / 3)
    assert r["unknown_rate"] == pytest.approx(1 / 6)
    pc = r["per_class"]
    assert list(pc.index) == ["a", "b", "c"]
    assert pc.loc["a", "precision"] == pytest.approx(1.0)
    assert pc.loc["a", "recall"] == pytest.approx(0.5)
    assert pc.loc["b", "n_predicted"] == 3
    assert pc["support"].tolist() == [2, 2, 2]


def test_confusion_matrix_rows_truth_columns_predictions_unknown_last():
    r = evaluate(["a", "a", "b", "c"], ["a", "Unknown", "x", "c"])
    cm = r["confusion"]
    assert list(cm.index) == ["a", "b", "c"]
    assert list(cm.columns) == ["a", "b", "c", "x", "Unknown"]
    assert cm.loc["a", "Unknown"] == 1 and cm.loc["b", "x"] == 1 and cm.loc["c", "c"] == 1
    assert int(cm.to_numpy().sum()) == 4


def test_perfect_and_summary_is_json_ready():
    import json

    y = np.array(["t1", "t2", "t1"])
    r = evaluate(y, y)
    assert r["accuracy"] == 1.0 and r["macro_f1"] == 1.0 and r["unknown_rate"] == 0.0
    s = summary_dict(r)
    assert s["per_class_f1"] == {"t1": 1.0, "t2": 1.0}
    json.dumps(s)


def test_length_mismatch_and_empty_raise():
    with pytest.raises(ValueError, match="labels"):
        evaluate(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no cells"):
        evaluate([], [])


def test_known_classes_split_accuracy_and_novel_unknown_rate():
    truth = ["a", "a", "b", "b", "new", "new", "new", "new"]
    pred = ["a", "b", "b", "Unknown", "Unknown", "Unknown", "Unknown", "a"]
    res = evaluate(truth, pred, known_classes=["a", "b", "c"])
    assert res["accuracy_known"] == pytest.approx(2 / 4)  # a, b right; b->Unknown counts wrong
    assert res["novel_unknown_rate"] == pytest.approx(3 / 4)
    assert res["n_cells_novel"] == 4
    # no query-only class: the rate is undefined, not 0
    res = evaluate(["a", "b"], ["a", "Unknown"], known_classes=["a", "b"])
    assert res["novel_unknown_rate"] is None and res["accuracy_known"] == pytest.approx(0.5)
    assert "accuracy_known" not in evaluate(["a"], ["a"])

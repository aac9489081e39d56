"""scikit-learn HistGradientBoostingClassifier -> ONNX ``ai.onnx.ml`` TreeEnsemble nodes.

Written with the ``onnx`` helper API (no skl2onnx): the fitted trees
(``HistGradientBoostingClassifier._predictors``, one tree per class and iteration) become one
``TreeEnsemble`` node (``ai.onnx.ml`` opset 5, double precision: double split thresholds and
leaf weights, the input cast to double) that sums the leaf values per class; the per-class
baseline is added and a ``Softmax`` gives the probabilities, as ``predict_proba`` computes them:
``softmax(baseline + sum of the trees' leaf values)``. A binary model (one tree per iteration)
gets a ``Sigmoid`` instead: ``p1 = sigmoid(baseline + sum)``, ``p0 = 1 - p1``.
:func:`hgb_binary_heads_onnx` puts several binary models (one per label of a multi-label task,
as :func:`heartline.training.multimodal.fit_gbm` fits them) into one graph.

The split rule is scikit-learn's on raw (not binned) data: ``x <= threshold`` goes left, NaN goes
where the node's ``missing_go_to_left`` says (``nodes_missing_value_tracks_true``). Categorical
splits are not supported (the rhythm head has none): a model with any raises ``ValueError``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["hgb_binary_heads_onnx", "hgb_classifier_nodes", "hgb_classifier_onnx"]

#: ``ai.onnx.ml`` opset of the TreeEnsemble operator (ONNX Runtime >= 1.19 runs it).
ML_OPSET = 5
_BRANCH_LEQ = 0


def _tree_arrays(model: Any) -> dict[str, Any]:
    """Flattened TreeEnsemble attributes of every tree of ``model`` (interior nodes and leaves)."""
    k_per_iter = int(model.n_trees_per_iteration_)
    feat: list[int] = []
    split: list[float] = []
    true_id: list[int] = []
    true_leaf: list[int] = []
    false_id: list[int] = []
    false_leaf: list[int] = []
    miss_true: list[int] = []
    roots: list[int] = []
    leaf_target: list[int] = []
    leaf_w: list[float] = []
    for per_iter in model._predictors:
        for k, pred in enumerate(per_iter):
            nodes = pred.nodes
            if np.any(nodes["is_categorical"][~nodes["is_leaf"].astype(bool)]):
                raise ValueError("categorical splits are not supported by this converter")
            interior: dict[int, int] = {}
            leaves: dict[int, int] = {}
            for i, nd in enumerate(nodes):
                if nd["is_leaf"]:
                    leaves[i] = len(leaf_w) + len(leaves)
                else:
                    interior[i] = len(feat) + len(interior)
            base_leaf = len(leaf_w)
            for i in sorted(leaves, key=leaves.__getitem__):
                leaf_target.append(k if k_per_iter > 1 else 0)
                leaf_w.append(float(nodes[i]["value"]))
            assert len(leaf_w) == base_leaf + len(leaves)
            if not interior:  # a single-leaf tree: one split whose both branches reach the leaf
                roots.append(len(feat))
                lid = leaves[0]
                feat.append(0)
                split.append(0.0)
                true_id.append(lid)
                true_leaf.append(1)
                false_id.append(lid)
                false_leaf.append(1)
                miss_true.append(1)
                continue
            roots.append(interior[0])
            for i in sorted(interior, key=interior.__getitem__):
                nd = nodes[i]
                left, right = int(nd["left"]), int(nd["right"])
                feat.append(int(nd["feature_idx"]))
                split.append(float(nd["num_threshold"]))
                true_leaf.append(int(left in leaves))
                true_id.append(leaves[left] if left in leaves else interior[left])
                false_leaf.append(int(right in leaves))
                false_id.append(leaves[right] if right in leaves else interior[right])
                miss_true.append(int(nd["missing_go_to_left"]))
    return {
        "nodes_featureids": feat,
        "nodes_splits": np.asarray(split, dtype=np.float64),
        "nodes_truenodeids": true_id,
        "nodes_trueleafs": true_leaf,
        "nodes_falsenodeids": false_id,
        "nodes_falseleafs": false_leaf,
        "nodes_missing_value_tracks_true": miss_true,
        "tree_roots": roots,
        "leaf_targetids": leaf_target,
        "leaf_weights": np.asarray(leaf_w, dtype=np.float64),
    }


def hgb_classifier_nodes(
    model: Any, x_name: str, out_name: str, *, prefix: str = "gbm_"
) -> tuple[list[Any], list[Any]]:
    """ONNX nodes and initializers computing ``model.predict_proba`` of ``x_name`` (float or double).

    Returns ``(nodes, initializers)``; ``out_name`` is a double tensor ``(n, n_classes)`` whose
    columns are ``model.classes_`` in order. The graph needs the ``ai.onnx.ml`` domain at opset
    :data:`ML_OPSET`.
    """
    from onnx import TensorProto, helper, numpy_helper

    arrs = _tree_arrays(model)
    n_classes = len(model.classes_)
    n_targets = n_classes if int(model.n_trees_per_iteration_) > 1 else 1
    x_d = prefix + "x_double"
    raw = prefix + "raw"
    scores = prefix + "scores"
    base = prefix + "baseline"
    baseline = np.asarray(model._baseline_prediction, dtype=np.float64).reshape(1, -1)
    nodes = [
        helper.make_node("Cast", [x_name], [x_d], to=TensorProto.DOUBLE, name=prefix + "cast"),
        helper.make_node(
            "TreeEnsemble",
            [x_d],
            [raw],
            domain="ai.onnx.ml",
            name=prefix + "trees",
            aggregate_function=1,  # SUM
            post_transform=0,  # NONE
            n_targets=n_targets,
            nodes_modes=numpy_helper.from_array(
                np.full(len(arrs["nodes_featureids"]), _BRANCH_LEQ, dtype=np.uint8),
                name="nodes_modes",
            ),
            nodes_splits=numpy_helper.from_array(arrs["nodes_splits"], name="nodes_splits"),
            leaf_weights=numpy_helper.from_array(arrs["leaf_weights"], name="leaf_weights"),
            **{k: v for k, v in arrs.items() if k not in ("nodes_splits", "leaf_weights")},
        ),
        helper.make_node("Add", [raw, base], [scores], name=prefix + "add_baseline"),
    ]
    inits = [numpy_helper.from_array(baseline, name=base)]
    if n_targets == 1:  # binary: p1 = sigmoid(score), p0 = 1 - p1
        p1 = prefix + "p1"
        p0 = prefix + "p0"
        one = prefix + "one"
        inits.append(numpy_helper.from_array(np.ones((1, 1), dtype=np.float64), name=one))
        nodes += [
            helper.make_node("Sigmoid", [scores], [p1], name=prefix + "sigmoid"),
            helper.make_node("Sub", [one, p1], [p0], name=prefix + "complement"),
            helper.make_node("Concat", [p0, p1], [out_name], axis=1, name=prefix + "concat"),
        ]
    else:
        nodes.append(
            helper.make_node("Softmax", [scores], [out_name], axis=1, name=prefix + "softmax")
        )
    return nodes, inits


def hgb_classifier_onnx(model: Any, n_features: int, *, opset: int = 18) -> Any:
    """A standalone ONNX model (input ``x`` double ``(n, n_features)``, output ``proba``)."""
    from onnx import TensorProto, checker, helper

    nodes, inits = hgb_classifier_nodes(model, "x", "proba")
    graph = helper.make_graph(
        nodes,
        "hgb_classifier",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("proba", TensorProto.DOUBLE, [None, len(model.classes_)])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        ir_version=10,
    )
    checker.check_model(m)
    return m


def hgb_binary_heads_onnx(models: list[Any], n_features: int, *, opset: int = 18) -> Any:
    """One ONNX model for one binary classifier per label (input ``x`` double
    ``(n, n_features)``, output ``proba`` double ``(n, len(models))``: column ``c`` is
    ``models[c].predict_proba(x)[:, 1]``)."""
    from onnx import TensorProto, checker, helper, numpy_helper

    nodes: list[Any] = []
    inits: list[Any] = [
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), name="col_start"),
        numpy_helper.from_array(np.asarray([2], dtype=np.int64), name="col_stop"),
        numpy_helper.from_array(np.asarray([1], dtype=np.int64), name="col_axis"),
    ]
    cols = []
    for c, model in enumerate(models):
        if list(model.classes_) != [0, 1] or int(model.n_trees_per_iteration_) != 1:
            raise ValueError(f"models[{c}] is not a binary 0/1 classifier: {list(model.classes_)}")
        if int(model.n_features_in_) != n_features:
            raise ValueError(f"models[{c}] takes {model.n_features_in_} inputs, not {n_features}")
        pre = f"head{c}_"
        n, i = hgb_classifier_nodes(model, "x", pre + "proba", prefix=pre)
        nodes += n
        inits += i
        nodes.append(
            helper.make_node(
                "Slice", [pre + "proba", "col_start", "col_stop", "col_axis"], [pre + "proba1"]
            )
        )
        cols.append(pre + "proba1")
    nodes.append(helper.make_node("Concat", cols, ["proba"], axis=1, name="concat_heads"))
    graph = helper.make_graph(
        nodes,
        "hgb_binary_heads",
        [helper.make_tensor_value_info("x", TensorProto.DOUBLE, [None, n_features])],
        [helper.make_tensor_value_info("proba", TensorProto.DOUBLE, [None, len(models)])],
        initializer=inits,
    )
    m = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", opset), helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
        ir_version=10,
    )
    checker.check_model(m)
    return m

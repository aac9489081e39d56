"""`heartline train | evaluate | tune | ship | bench models | bench classical` on tiny subsets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from heartline.cli.main import app

torch.set_num_threads(1)
runner = CliRunner()


def invoke(*args: str) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, res.output + repr(res.exception)
    return res.output


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory, data_dir) -> Path:
    out = tmp_path_factory.mktemp("bench")
    invoke(
        "bench",
        "models",
        "--quick",
        "--models",
        "hybrid,hybrid_ensemble,always_n",
        "--out",
        out,
        "--n-bootstrap",
        "20",
        "--data-dir",
        data_dir,
    )
    return out


def test_bench_models_quick_writes_table_and_per_model_runs(bench_dir) -> None:
    report = json.loads((bench_dir / "models.json").read_text())
    assert list(report["models"]) == ["hybrid", "hybrid_ensemble", "always_n"]
    for m in report["models"].values():
        assert set(m["mean"]) == {"annotated", "detected"}
        assert 0 <= m["mean"]["annotated"]["accuracy"] <= 1
    md = (bench_dir / "models.md").read_text()
    assert "de Chazal et al. 2004" in md and "75.9" in md and "QUICK" in md
    assert (bench_dir / "hybrid" / "annotated" / "metrics.json").is_file()
    assert (bench_dir / "hybrid" / "model" / "model.pt").is_file()
    crossfit = json.loads((bench_dir / "hybrid_ensemble" / "crossfit.json").read_text())
    assert len(crossfit["folds"]) == 2 and len(crossfit["calibration"]["bias"]) == 5


def test_evaluate_registry_model_quick(tmp_path, data_dir) -> None:
    out = invoke(
        "evaluate",
        "--model",
        "cnn",
        "--protocol",
        "inter-patient",
        "--rpeaks",
        "detected",
        "--quick",
        "--epochs",
        "1",
        "--n-bootstrap",
        "10",
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    assert "cnn inter-patient (detected)" in out
    d = json.loads((tmp_path / "metrics.json").read_text())
    assert d["protocol"] == "inter-patient" and d["rpeaks"] == "detected" and "n_missed_beats" in d
    assert set(d["test_records"]) == {"100", "232"}
    assert d["af_gate"] is False  # metrics.json says whether the AF gate was applied


def test_evaluate_intra_patient_is_leaky(tmp_path, data_dir) -> None:
    out = invoke(
        "evaluate",
        "--model",
        "decision_tree",
        "--protocol",
        "intra-patient",
        "--quick",
        "--n-bootstrap",
        "0",
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    assert "LEAKY" in out
    assert json.loads((tmp_path / "metrics.json").read_text())["leaky"] is True


def test_evaluate_saved_model_and_refuse_other_protocols(tmp_path, bench_dir, data_dir) -> None:
    invoke(
        "evaluate",
        "--model",
        bench_dir / "hybrid",
        "--quick",
        "--n-bootstrap",
        "0",
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    assert json.loads((tmp_path / "metrics.json").read_text())["model"] == "hybrid"
    res = runner.invoke(
        app,
        [
            "evaluate",
            "--model",
            str(bench_dir / "hybrid"),
            "--protocol",
            "intra-patient",
            "--out",
            str(tmp_path),
        ],
    )
    assert res.exit_code != 0
    res = runner.invoke(app, ["evaluate", "--model", "nope", "--quick", "--out", str(tmp_path)])
    assert res.exit_code != 0 and "valid names" in res.output


def test_ship_quick_into_a_folder(tmp_path, bench_dir, data_dir) -> None:
    out = invoke(
        "ship",
        bench_dir / "hybrid",
        "--dest",
        tmp_path,
        "--quick",
        "--n-bootstrap",
        "10",
        "--data-dir",
        data_dir,
    )
    assert "max |torch - onnx|" in out
    for name in (
        "hybrid.onnx",
        "hybrid.pt",
        "hybrid.json",
        "hybrid.toml",
        "hybrid_metrics.json",
        "MODEL_CARD.md",
    ):
        assert (tmp_path / name).is_file(), name
    s = json.loads((tmp_path / "hybrid_metrics.json").read_text())
    assert s["max_abs_diff_torch_vs_onnx"] <= 1e-4
    assert set(s["ds2"]) == {"annotated", "detected"}
    assert "Intended use" in (tmp_path / "MODEL_CARD.md").read_text()


def _quick_tune(out: Path, data_dir: Path, trials: int, *extra: object) -> str:
    """``heartline tune --quick`` with one epoch per trial."""
    args = ("--trials", trials, "--epochs", 1, "--quick", "--out", out, "--data-dir", data_dir)
    return invoke("tune", *extra, *args)


def test_tune_two_trials(tmp_path, data_dir) -> None:
    _quick_tune(tmp_path, data_dir, 2)
    assert (tmp_path / "best.toml").is_file()
    assert len(json.loads((tmp_path / "study.json").read_text())["trials"]) == 2


def test_tune_starts_from_a_config(tmp_path, data_dir) -> None:
    from heartline.training.config import load_config

    repo = Path(__file__).resolve().parents[2]
    _quick_tune(
        tmp_path, data_dir, 1, "--config", repo / "configs" / "experiments" / "hybrid_best.toml"
    )
    best = load_config(tmp_path / "best.toml")
    # parameters the search does not touch come from the config
    assert best.model.params["rr_mode"] == "log_ratios" and best.model.params["contrast"] is True
    bad = tmp_path / "tree.toml"
    bad.write_text('name = "t"\n[model]\nname = "decision_tree"\n')
    res = runner.invoke(
        app, ["tune", "--config", str(bad), "--quick", "--out", str(tmp_path / "x")]
    )
    assert res.exit_code != 0 and "tunes 'hybrid'" in res.output


def test_tune_starts_from_a_template_config(tmp_path, data_dir) -> None:
    """The shipped config reads the template columns: the trials' beat sets carry them."""
    from heartline.training.config import load_config

    repo = Path(__file__).resolve().parents[2]
    _quick_tune(
        tmp_path, data_dir, 1, "--config", repo / "configs" / "shipped" / "hybrid_best_tpl.toml"
    )
    study = json.loads((tmp_path / "study.json").read_text())
    assert study["inputs"] == "13 RR columns + 19 template columns"
    assert study["trials"][0]["state"] == "COMPLETE"
    assert load_config(tmp_path / "best.toml").model.template_features


def test_bench_models_inputs_follow_the_hybrid_config_or_the_switch(tmp_path, data_dir) -> None:
    """--hybrid-config with template columns: every model gets them (the classical ones in their
    features); --no-template-features: none does, the hybrid included."""
    repo = Path(__file__).resolve().parents[2]
    common = ("--quick", "--rpeaks", "annotated", "--n-bootstrap", "0", "--data-dir", data_dir)
    tpl = ("--hybrid-config", repo / "configs" / "shipped" / "hybrid_best_tpl.toml")
    out = invoke(
        "bench",
        "models",
        *tpl,
        "--models",
        "hybrid,random_forest",
        "--out",
        tmp_path / "on",
        *common,
    )
    assert "inputs: 13 RR columns + 19 template columns" in out
    report = json.loads((tmp_path / "on" / "models.json").read_text())
    assert {m["inputs"] for m in report["models"].values()} == {report["inputs"]["label"]}
    assert report["inputs"]["template_features"]
    features = json.loads((tmp_path / "on" / "random_forest" / "model" / "config.json").read_text())
    assert "tpl_fill" in features["feature_names"]
    invoke(
        "bench",
        "models",
        *tpl,
        "--no-template-features",
        "--models",
        "hybrid",
        "--out",
        tmp_path / "off",
        *common,
    )
    report = json.loads((tmp_path / "off" / "models.json").read_text())
    assert report["models"]["hybrid"]["inputs"] == "13 RR columns"
    assert report["configs"]["hybrid"]["model"]["params"]["template_features"] is False
    meta = json.loads((tmp_path / "off" / "hybrid" / "model" / "model.json").read_text())
    assert meta["n_rr"] == 13
    # the saved models of the template run evaluate on beat sets that carry the columns
    for name in ("hybrid", "random_forest"):
        invoke(
            "evaluate",
            "--model",
            tmp_path / "on" / name,
            "--quick",
            "--n-bootstrap",
            "0",
            "--out",
            tmp_path / f"eval-{name}",
            "--data-dir",
            data_dir,
        )


def test_train_from_config(tmp_path, data_dir) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\n[model]\nname = "decision_tree"\n[model.params]\nmax_train_beats = 2000\n'
    )
    out = invoke(
        "train", "--config", cfg, "--out", tmp_path / "runs", "--no-test", "--data-dir", data_dir
    )
    assert "run directory" in out
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "metrics.json").is_file() and (run / "config.toml").is_file()


def test_train_rejects_bad_config(tmp_path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('name = "x"\n[model]\nname = "hybrid"\n[train]\nlearning_rate = 1\n')
    res = runner.invoke(app, ["train", "--config", str(cfg), "--out", str(tmp_path)])
    assert res.exit_code != 0 and "learning_rate" in res.output


def test_bench_classical_wraps_the_classical_benchmark(tmp_path, data_dir) -> None:
    out = invoke(
        "bench",
        "classical",
        "--models",
        "decision_tree",
        "--quick",
        "--n-bootstrap",
        "0",
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    # the console wraps long paths: compare without line breaks
    assert "summary.json" in out.replace("\n", "")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert 0 <= summary["decision_tree"]["accuracy"] <= 1
    assert summary["decision_tree"]["inputs"] == "13 RR columns"
    metrics = json.loads((tmp_path / "decision_tree" / "metrics.json").read_text())
    assert metrics["quick"] is True and metrics["test_records"] == ["100", "232"]  # a smoke run


def test_bench_classical_with_template_columns(tmp_path, data_dir) -> None:
    invoke(
        "bench",
        "classical",
        "--models",
        "decision_tree",
        "--template-features",
        "--quick",
        "--n-bootstrap",
        "0",
        "--out",
        tmp_path,
        "--data-dir",
        data_dir,
    )
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["decision_tree"]["inputs"] == "13 RR columns + 19 template columns"
    saved = json.loads((tmp_path / "decision_tree" / "model" / "config.json").read_text())
    assert "tpl_fill" in json.dumps(saved)  # the model was fitted on the template columns


def test_select_quick_picks_a_winner_and_rejects_bad_candidates(tmp_path, data_dir) -> None:
    cfg = tmp_path / "tiny.toml"
    cfg.write_text(
        'name = "tiny"\n[model]\nname = "hybrid"\n[model.params]\ncontext_k = 0\nchannels = 4\n'
        "feature_dim = 8\nlstm_hidden = 8\n[train]\nmax_epochs = 1\nnum_threads = 1\n"
    )
    out = invoke(
        "select",
        "--candidate",
        f"tiny={cfg}",
        "--quick",
        "--folds",
        "2",
        "--n-bootstrap",
        "10",
        "--out",
        tmp_path / "sel",
        "--data-dir",
        data_dir,
    )
    assert "winner tiny" in out
    assert json.loads((tmp_path / "sel" / "selection.json").read_text())["winner"] == "tiny"
    bad = runner.invoke(app, ["select", "--candidate", str(cfg), "--out", str(tmp_path / "x")])
    assert bad.exit_code != 0 and "NAME=CONFIG" in bad.output
    cnn = tmp_path / "cnn.toml"
    cnn.write_text('name = "c"\n[model]\nname = "cnn"\n')
    bad = runner.invoke(app, ["select", "--candidate", f"c={cnn}", "--out", str(tmp_path / "y")])
    assert bad.exit_code != 0 and "only hybrid" in bad.output
    bad = runner.invoke(
        app, ["select", "--candidate", f"t={cfg}", "--seeds", "0,x", "--out", str(tmp_path / "z")]
    )
    assert bad.exit_code != 0 and "comma-separated integers" in bad.output


def test_evaluate_the_shipped_model_quick(tmp_path, data_dir) -> None:
    """The default --model (the shipped one) evaluates, whatever RR columns it reads: a model with
    template columns gets beat sets that carry them."""
    from heartline.edge.runtime import OnnxBeatClassifier
    from heartline.edge.shipped import shipped_model_path

    out = invoke(
        "evaluate", "--quick", "--n-bootstrap", "0", "--out", tmp_path, "--data-dir", data_dir
    )
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert m["model"] == "shipped" and m["n_test_beats"] > 1000 and "accuracy" in out
    assert OnnxBeatClassifier(shipped_model_path()).n_rr in (13, 32)


def test_protocol_data_for_model_adds_template_columns_only_when_read() -> None:
    from types import SimpleNamespace

    from heartline.training.protocols import ProtocolData

    d = ProtocolData()
    assert d.for_model(SimpleNamespace(n_rr=13)) is d  # an RR-only ONNX model
    assert d.for_model(SimpleNamespace(n_rr=32)).template_features  # wider ONNX input
    assert d.for_model(
        SimpleNamespace(net=SimpleNamespace(template_features=True))
    ).template_features
    assert not d.for_model(
        SimpleNamespace(net=SimpleNamespace(template_features=False))
    ).template_features
    # a deep baseline or an ensemble trained on the template columns (bench models)
    assert d.for_model(SimpleNamespace(net=SimpleNamespace(n_rr=32))).template_features
    assert not d.for_model(SimpleNamespace(net=SimpleNamespace(n_rr=13))).template_features
    # a classical model, by its feature names
    assert d.for_model(SimpleNamespace(feature_names=("rr_prev_s", "tpl_fill"))).template_features
    assert not d.for_model(SimpleNamespace(feature_names=("rr_prev_s",))).template_features


def test_evaluate_trains_a_template_config_on_template_beat_sets(tmp_path, data_dir) -> None:
    """`evaluate --model hybrid --config C` with `template_features = true` trains and tests on
    beat sets with the template columns (it failed with "needs n_rr = 32" before)."""
    import tomllib

    import tomli_w

    cfg = tomllib.loads(
        (
            Path(__file__).parents[2] / "configs" / "experiments" / "hybrid_intra_tpl.toml"
        ).read_text()
    )
    cfg["model"]["params"].update(channels=4, feature_dim=8, lstm_hidden=8)
    cfg["train"].update(max_epochs=1, num_threads=1)
    path = tmp_path / "tpl.toml"
    path.write_text(tomli_w.dumps(cfg))
    out = invoke(
        "evaluate",
        "--model",
        "hybrid",
        "--config",
        path,
        "--protocol",
        "intra-patient",
        "--quick",
        "--n-bootstrap",
        "0",
        "--out",
        tmp_path / "run",
        "--data-dir",
        data_dir,
    )
    assert "LEAKY" in out
    saved = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert saved["leaky"] is True


def test_bench_models_refuses_a_hybrid_config_of_another_model(tmp_path) -> None:
    """The parameters of --hybrid-config go to the hybrid: a CNN config is refused before any
    training, with the model named."""
    cfg = tmp_path / "cnn.toml"
    cfg.write_text('name = "c"\n[model]\nname = "cnn"\n[train]\nmax_epochs = 1\n')
    res = runner.invoke(
        app, ["bench", "models", "--quick", "--hybrid-config", str(cfg), "--out", str(tmp_path)]
    )
    assert res.exit_code == 2, res.output
    assert "'cnn', not 'hybrid'" in " ".join(res.output.split())
    assert not (tmp_path / "models.json").exists()

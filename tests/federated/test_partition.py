"""Hospital manifests: each patient in exactly one hospital, test records central, bad ones refused."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from heartline.data.splits import DS1, DS2
from heartline.federated.partition import (
    Hospital,
    ManifestError,
    load_manifest,
    partition_beats,
    partition_rhythm,
    rhythm_holdout_records,
    rhythm_labels,
    save_manifest,
    validate_manifest,
)


@pytest.fixture(scope="module")
def counts() -> dict[str, dict[str, int]]:
    from heartline.federated.partition import beat_class_counts

    return beat_class_counts(DS1)


@pytest.mark.parametrize("n", [3, 4, 5, 6])
def test_beats_each_ds1_patient_in_exactly_one_hospital(n: int, counts) -> None:
    m = partition_beats(n, seed=n, record_class_counts=counts)
    recs = m.all_records()
    assert sorted(recs) == sorted(DS1)  # every DS1 patient, none twice
    assert not set(recs) & set(DS2)
    assert m.test_records == DS2
    # natural non-IID: some hospitals never saw an SVEB beat, others did
    s_per_hospital = [h.class_counts.get("S", 0) for h in m.hospitals]
    assert min(s_per_hospital) == 0 < max(s_per_hospital)
    assert len({len(h.records) for h in m.hospitals}) > 1 or n == 6  # unequal sizes


def test_beats_hospital_count_is_checked(counts) -> None:
    with pytest.raises(ValueError, match="3 to 6"):
        partition_beats(2, seed=0, record_class_counts=counts)


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_rhythm_dirichlet_sites_keep_the_holdout_central(alpha: float) -> None:
    labels = rhythm_labels()
    m = partition_rhythm(8, alpha=alpha, seed=1, labels=labels)
    held = set(rhythm_holdout_records(labels))
    recs = m.all_records()
    assert len(recs) == len(set(recs)) == len(labels) - len(held)
    assert not set(recs) & held
    assert set(m.test_records) == held
    sizes = [len(h.records) for h in m.hospitals]
    assert min(sizes) >= 20 and max(sizes) > 1.5 * min(sizes)  # unequal sizes
    # label skew: the share of AF differs between sites, more so with alpha 0.3
    shares = [h.class_counts.get("A", 0) / len(h.records) for h in m.hospitals]
    assert max(shares) - min(shares) > 0.05


def test_rhythm_skew_is_stronger_with_small_alpha() -> None:
    import numpy as np

    labels = rhythm_labels()

    def spread(alpha: float) -> float:
        m = partition_rhythm(8, alpha=alpha, seed=3, labels=labels)
        shares = np.array(
            [[h.class_counts.get(c, 0) / len(h.records) for c in "NAO~"] for h in m.hospitals]
        )
        return float(shares.std(axis=0).mean())

    assert spread(0.3) > spread(1.0)


def test_manifest_round_trip(tmp_path: Path, counts) -> None:
    m = partition_beats(4, seed=7, record_class_counts=counts)
    path = save_manifest(m, tmp_path / "m.json")
    assert load_manifest(path) == m


def _bad(m, **kw):
    return dataclasses.replace(m, **kw)


def test_patient_in_two_hospitals_is_refused(tmp_path: Path, counts) -> None:
    m = partition_beats(3, seed=0, record_class_counts=counts)
    h0, h1, h2 = m.hospitals
    dup = h0.records[0]
    bad = _bad(m, hospitals=(h0, dataclasses.replace(h1, records=(*h1.records, dup)), h2))
    with pytest.raises(ManifestError, match=rf"record '{dup}' is in two hospitals"):
        validate_manifest(bad)
    # also when read from disk: the file names the problem
    path = tmp_path / "dup.json"
    path.write_text(json.dumps(bad.to_dict()), encoding="utf-8")
    with pytest.raises(ManifestError, match="two hospitals"):
        load_manifest(path)


def test_test_record_in_a_hospital_is_refused(counts) -> None:
    m = partition_beats(3, seed=0, record_class_counts=counts)
    h0, *rest = m.hospitals
    bad = _bad(m, hospitals=(dataclasses.replace(h0, records=(*h0.records, "100")), *rest))
    with pytest.raises(ManifestError, match=r"'100'.*central test record"):
        validate_manifest(bad)


def test_other_bad_manifests_are_refused(tmp_path: Path, counts) -> None:
    m = partition_beats(3, seed=0, record_class_counts=counts)
    h0, h1, h2 = m.hospitals
    with pytest.raises(ManifestError, match="holds no record"):
        validate_manifest(_bad(m, hospitals=(dataclasses.replace(h0, records=()), h1, h2)))
    with pytest.raises(ManifestError, match="not a DS1 record"):
        validate_manifest(_bad(m, hospitals=(dataclasses.replace(h0, records=("999",)), h1, h2)))
    with pytest.raises(ManifestError, match="exactly DS2"):
        validate_manifest(_bad(m, test_records=DS2[1:]))
    with pytest.raises(ManifestError, match="task 'ecg'"):
        validate_manifest(_bad(m, task="ecg"))
    with pytest.raises(ManifestError, match="partition ids"):
        validate_manifest(_bad(m, hospitals=(h0, h1, Hospital(7, "x", h2.records))))
    (tmp_path / "broken.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ManifestError, match="malformed"):
        load_manifest(tmp_path / "broken.json")
    with pytest.raises(ManifestError, match="does not exist"):
        load_manifest(tmp_path / "missing.json")
    with pytest.raises(ManifestError, match="partition-id 5"):
        m.hospital(5)


def test_cli_partition_writes_and_refuses(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from heartline.cli.main import app

    runner = CliRunner()
    out = tmp_path / "beats.json"
    res = runner.invoke(
        app,
        [
            "federated",
            "partition",
            "--task",
            "beats",
            "--hospitals",
            "3",
            "--seed",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    assert sorted(load_manifest(out).all_records()) == sorted(DS1)
    res = runner.invoke(
        app,
        [
            "federated",
            "partition",
            "--task",
            "beats",
            "--hospitals",
            "9",
            "--seed",
            "2",
            "--out",
            str(out),
        ],
    )
    assert res.exit_code != 0 and "3 to 6" in res.output
    out_r = tmp_path / "rhythm.json"
    res = runner.invoke(
        app,
        [
            "federated",
            "partition",
            "--task",
            "rhythm",
            "--hospitals",
            "5",
            "--alpha",
            "0.3",
            "--seed",
            "0",
            "--out",
            str(out_r),
        ],
    )
    assert res.exit_code == 0, res.output
    assert load_manifest(out_r).alpha == 0.3

"""Hospitals as real partitions: which records each federated site holds (a JSON manifest).

Two tasks, each with a central test set that no hospital ever holds:

* ``beats``: the MIT-BIH DS1 patients (:data:`heartline.data.splits.DS1`) split over 3-6
  hospitals, each patient in exactly one. The split is *naturally* non-IID: the patients with
  supraventricular ectopic (SVEB, AAMI class S) beats go to the first ``ceil(N / 2)``
  hospitals, the patients without a single S beat to the others, so that some hospitals have
  never seen an SVEB beat, as a cardiology ward and a general ward would differ. Test set: DS2.
* ``rhythm``: the PhysioNet/CinC Challenge 2017 single-lead wearable records split over 5-10
  sites with label skew (per class, the records are shared out in proportions drawn from a
  Dirichlet(alpha) distribution, Hsu et al. 2019), hence unequal sizes. Test set: the rhythm
  task's fixed, class-stratified held-out fold (:func:`rhythm_holdout_records`), never a site's.

:func:`validate_manifest` refuses a manifest that puts a record in two hospitals, a test record
in any hospital, a record that the task does not know, or an empty hospital; every SuperNode
loads and checks the manifest, then reads only its own hospital's records.

References
----------
de Chazal P, O'Dwyer M, Reilly RB. Automatic classification of heartbeats using ECG morphology
and heartbeat interval features. IEEE Trans Biomed Eng 51(7):1196-1206 (2004).
Clifford GD et al. AF classification from a short single lead ECG recording: the
PhysioNet/Computing in Cardiology Challenge 2017. Comput Cardiol 44 (2017).
Hsu TMH, Qi H, Brown M. Measuring the effects of non-identical data distribution for federated
visual classification. arXiv:1909.06335 (2019).
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from heartline.errors import HeartlineError

__all__ = [
    "BEAT_HOSPITALS",
    "MANIFEST_FORMAT",
    "RHYTHM_CLASSES",
    "RHYTHM_SITES",
    "TASKS",
    "Hospital",
    "Manifest",
    "ManifestError",
    "load_manifest",
    "partition_beats",
    "partition_rhythm",
    "rhythm_holdout_records",
    "rhythm_labels",
    "save_manifest",
    "validate_manifest",
]

MANIFEST_FORMAT = "heartline-federated-manifest/1"
TASKS: tuple[str, ...] = ("beats", "rhythm")
#: Allowed number of hospitals per task (inclusive).
BEAT_HOSPITALS: tuple[int, int] = (3, 6)
RHYTHM_SITES: tuple[int, int] = (5, 10)
#: CinC 2017 labels: normal, atrial fibrillation, other rhythm, too noisy.
RHYTHM_CLASSES: tuple[str, ...] = ("N", "A", "O", "~")
#: A hospital needs at least this many records for a rhythm split to be accepted.
MIN_SITE_RECORDS = 20


class ManifestError(HeartlineError, ValueError):
    """A partition manifest is inconsistent (the message names the record and hospitals)."""


@dataclass(frozen=True)
class Hospital:
    """One federated site: its index (the SuperNode's ``partition-id``), name and records."""

    partition_id: int
    name: str
    records: tuple[str, ...]
    class_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Manifest:
    """Which records each hospital holds, and the central test records nobody holds."""

    task: str
    database: str
    seed: int
    alpha: float | None
    hospitals: tuple[Hospital, ...]
    test_records: tuple[str, ...]
    format: str = MANIFEST_FORMAT

    @property
    def n_hospitals(self) -> int:
        return len(self.hospitals)

    def hospital(self, partition_id: int) -> Hospital:
        """The hospital a SuperNode with ``partition-id`` serves."""
        for h in self.hospitals:
            if h.partition_id == partition_id:
                return h
        raise ManifestError(
            f"partition-id {partition_id} is not in the manifest (hospitals 0 .. "
            f"{self.n_hospitals - 1})"
        )

    def all_records(self) -> tuple[str, ...]:
        return tuple(r for h in self.hospitals for r in h.records)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hospitals"] = [asdict(h) | {"records": list(h.records)} for h in self.hospitals]
        d["test_records"] = list(self.test_records)
        return d


# --------------------------------------------------------------------------- rhythm labels
def rhythm_labels(data_dir: str | os.PathLike[str] | None = None) -> dict[str, str]:
    """Record name -> label of every CinC 2017 record on disk
    (:func:`heartline.data.cinc2017.load_cinc2017_index`)."""
    from heartline.data.cinc2017 import load_cinc2017_index

    index = load_cinc2017_index(data_dir=data_dir)
    return dict(zip(index["record"].astype(str), index["label"].astype(str), strict=True))


def rhythm_holdout_records(labels: dict[str, str]) -> tuple[str, ...]:
    """The fixed central rhythm test fold: :func:`heartline.data.cinc2017.cinc2017_holdout`
    (20 % of each class, the rhythm task's own held-out split), never given to a site."""
    from heartline.data.cinc2017 import cinc2017_holdout

    names = sorted(labels)
    held = cinc2017_holdout([labels[r] for r in names])
    return tuple(r for r, h in zip(names, held, strict=True) if h)


# --------------------------------------------------------------------------- partitioners
def _check_n(task: str, n: int) -> None:
    lo, hi = BEAT_HOSPITALS if task == "beats" else RHYTHM_SITES
    if not lo <= n <= hi:
        raise ValueError(f"hospitals: the {task} task takes {lo} to {hi} hospitals, got {n}")


def _split_sizes(n_items: int, n_parts: int, rng: np.random.Generator) -> list[int]:
    """Unequal sizes (Dirichlet(2) proportions), each part at least one item."""
    if n_items < n_parts:
        raise ValueError(f"cannot split {n_items} patients over {n_parts} hospitals")
    p = rng.dirichlet(np.full(n_parts, 2.0))
    sizes = np.ones(n_parts, dtype=int) + np.floor(p * (n_items - n_parts)).astype(int)
    for i in rng.permutation(n_parts)[: n_items - int(sizes.sum())]:
        sizes[i] += 1
    return sizes.tolist()


def partition_beats(
    n_hospitals: int,
    *,
    seed: int,
    record_class_counts: dict[str, dict[str, int]] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> Manifest:
    """Split the MIT-BIH DS1 patients over ``n_hospitals`` (3-6), naturally non-IID.

    Patients with at least one S beat go to hospitals ``0 .. ceil(N/2) - 1``, the others to the
    remaining hospitals (which therefore hold no SVEB patient), in seeded random order with
    unequal sizes.

    Parameters
    ----------
    n_hospitals : int
    seed : int
    record_class_counts : dict, optional
        Record -> AAMI class counts (default: counted from the annotated beats of DS1).
    data_dir : path-like, optional
    """
    from heartline.data.splits import DS1, DS2

    _check_n("beats", n_hospitals)
    if record_class_counts is None:
        record_class_counts = beat_class_counts(DS1, data_dir=data_dir)
    rng = np.random.default_rng(seed)
    sveb = [r for r in DS1 if record_class_counts[r].get("S", 0) > 0]
    other = [r for r in DS1 if r not in sveb]
    n_sveb_h = math.ceil(n_hospitals / 2)
    groups = [(sveb, range(n_sveb_h)), (other, range(n_sveb_h, n_hospitals))]
    assigned: dict[int, list[str]] = {i: [] for i in range(n_hospitals)}
    for recs, ids in groups:
        order = [recs[i] for i in rng.permutation(len(recs))]
        sizes = _split_sizes(len(order), len(ids), rng)
        start = 0
        for hid, size in zip(ids, sizes, strict=True):
            assigned[hid] = sorted(order[start : start + size])
            start += size
    hospitals = tuple(
        Hospital(i, f"hospital-{i}", tuple(recs), _sum_counts(recs, record_class_counts))
        for i, recs in assigned.items()
    )
    return Manifest("beats", "mitdb", seed, None, hospitals, tuple(DS2))


def beat_class_counts(
    records: tuple[str, ...], *, data_dir: str | os.PathLike[str] | None = None
) -> dict[str, dict[str, int]]:
    """AAMI class counts of the annotated beats of each record."""
    from heartline.data.beat_dataset import build_beat_set

    beats = build_beat_set(records, data_dir=data_dir, progress=False)
    return {r: beats.select_records([r]).class_counts() for r in records}


def _sum_counts(records: list[str], counts: dict[str, dict[str, int]]) -> dict[str, int]:
    total: Counter[str] = Counter()
    for r in records:
        total.update(counts[r])
    return dict(total)


def partition_rhythm(
    n_sites: int,
    *,
    alpha: float,
    seed: int,
    labels: dict[str, str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_tries: int = 200,
) -> Manifest:
    """Split the CinC 2017 training records over ``n_sites`` (5-10) with Dirichlet label skew.

    For each class the records are shared out in proportions drawn from Dirichlet(``alpha``)
    (small ``alpha``: strong skew; 0.3 and 1.0 are the benchmark's settings). Draws are repeated
    (seeded) until every site holds at least :data:`MIN_SITE_RECORDS` records. The held-out fold
    (:func:`rhythm_holdout_records`) is never given to a site.
    """
    _check_n("rhythm", n_sites)
    if not alpha > 0:
        raise ValueError(f"alpha must be > 0, got {alpha}")
    labels = labels if labels is not None else rhythm_labels(data_dir)
    test = set(rhythm_holdout_records(labels))
    pool = {r: c for r, c in labels.items() if r not in test}
    rng = np.random.default_rng(seed)
    for _ in range(max_tries):
        assigned: dict[int, list[str]] = {i: [] for i in range(n_sites)}
        for c in RHYTHM_CLASSES:
            recs = sorted(r for r, lab in pool.items() if lab == c)
            recs = [recs[i] for i in rng.permutation(len(recs))]
            cuts = (np.cumsum(rng.dirichlet(np.full(n_sites, alpha))) * len(recs)).astype(int)
            for i, part in enumerate(np.split(np.array(recs), cuts[:-1])):
                assigned[i].extend(part.tolist())
        if min(len(v) for v in assigned.values()) >= MIN_SITE_RECORDS:
            break
    else:
        raise ValueError(
            f"no Dirichlet({alpha}) draw in {max_tries} gave every one of {n_sites} sites "
            f"{MIN_SITE_RECORDS} records; use a larger alpha or fewer sites"
        )
    hospitals = tuple(
        Hospital(
            i,
            f"site-{i}",
            tuple(sorted(recs)),
            dict(Counter(pool[r] for r in recs)),
        )
        for i, recs in assigned.items()
    )
    return Manifest("rhythm", "cinc2017", seed, float(alpha), hospitals, tuple(sorted(test)))


# --------------------------------------------------------------------------- validation and I/O
def validate_manifest(manifest: Manifest, *, known_records: set[str] | None = None) -> Manifest:
    """Refuse an inconsistent manifest with a message naming the record and the hospitals.

    Checks: known task; at least two hospitals with distinct partition ids, none empty; no
    record in two hospitals (nor twice in one); no test record in any hospital; for the beats
    task the test set is exactly DS2 and hospitals hold only DS1 records; every record known
    (``known_records``; for rhythm, the labelled CinC 2017 records when given).

    Returns the manifest unchanged.

    Raises
    ------
    ManifestError
    """
    if manifest.format != MANIFEST_FORMAT:
        raise ManifestError(f"format {manifest.format!r} is not {MANIFEST_FORMAT!r}")
    if manifest.task not in TASKS:
        raise ManifestError(f"task {manifest.task!r} is unknown; valid tasks: {list(TASKS)}")
    if len(manifest.hospitals) < 2:
        raise ManifestError(f"a federation needs >= 2 hospitals, got {len(manifest.hospitals)}")
    ids = [h.partition_id for h in manifest.hospitals]
    if sorted(ids) != list(range(len(ids))):
        raise ManifestError(f"partition ids must be 0 .. {len(ids) - 1}, got {sorted(ids)}")
    owner: dict[str, str] = {}
    test = set(manifest.test_records)
    for h in manifest.hospitals:
        if not h.records:
            raise ManifestError(f"hospital {h.name!r} (partition {h.partition_id}) holds no record")
        for r in h.records:
            if r in owner:
                raise ManifestError(
                    f"record {r!r} is in two hospitals ({owner[r]!r} and {h.name!r}): "
                    "each patient must be in exactly one"
                    if owner[r] != h.name
                    else f"record {r!r} is listed twice in hospital {h.name!r}"
                )
            owner[r] = h.name
            if r in test:
                raise ManifestError(
                    f"record {r!r} of hospital {h.name!r} is a central test record: test "
                    "records never go to a hospital"
                )
    if manifest.task == "beats":
        from heartline.data.splits import DS1, DS2

        if set(manifest.test_records) != set(DS2):
            raise ManifestError("the beats task's test records must be exactly DS2")
        for r, h_name in owner.items():
            if r in DS2:
                raise ManifestError(f"record {r!r} of hospital {h_name!r} is a DS2 test record")
            if r not in DS1:
                raise ManifestError(f"record {r!r} of hospital {h_name!r} is not a DS1 record")
    if known_records is not None:
        for r, h_name in owner.items():
            if r not in known_records:
                raise ManifestError(f"record {r!r} of hospital {h_name!r} is unknown")
    return manifest


def save_manifest(manifest: Manifest, path: str | os.PathLike[str]) -> Path:
    """Validate and write the manifest as JSON."""
    validate_manifest(manifest)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(manifest.to_dict(), indent=2) + "\n", encoding="utf-8")
    return path


def load_manifest(path: str | os.PathLike[str]) -> Manifest:
    """Read and validate a manifest written by :func:`save_manifest`."""
    path = Path(path)
    try:
        d = json.loads(path.read_text(encoding="utf-8"))
        hospitals = tuple(
            Hospital(
                int(h["partition_id"]),
                str(h["name"]),
                tuple(str(r) for r in h["records"]),
                {str(k): int(v) for k, v in h.get("class_counts", {}).items()},
            )
            for h in d["hospitals"]
        )
        manifest = Manifest(
            task=str(d["task"]),
            database=str(d["database"]),
            seed=int(d["seed"]),
            alpha=None if d.get("alpha") is None else float(d["alpha"]),
            hospitals=hospitals,
            test_records=tuple(str(r) for r in d["test_records"]),
            format=str(d.get("format", "")),
        )
    except FileNotFoundError:
        raise ManifestError(f"manifest {path} does not exist") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"manifest {path} is malformed: {exc!r}") from None
    try:
        return validate_manifest(manifest)
    except ManifestError as exc:
        raise ManifestError(f"manifest {path}: {exc}") from None

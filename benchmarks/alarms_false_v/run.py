"""What the ventricular false alarms on wearable records are, and one prior that was tried.

Replays CinC 2017 records through the live alarm path (``heartline.bench.alarms``' ``after``
configuration: exactly what ``heartline bench alarms`` scores) and

* ``--plot REC ...``: draws each record with its non-N beat labels and its physiological alarms
  (``--out`` PNG);
* ``--half dev|held_out [--prior]``: the fraction of the scored ``N`` (seed-0 sample of 800) and
  ``~`` records of that half (``cinc_dev_half``, seed 2019) with a physiological alarm, with or
  without the "sinus rhythm marches through" prior: a run of >= 2 V beats whose surrounding
  N beats are one reference RR interval apart (within the prematurity tolerance) is not
  ventricular ectopy (an interpolated couplet is physiologically implausible: the sinus beat
  after it would fall in the ventricles' refractory period), so such V beats are dropped from
  the ventricular rules. The prior is applied by wrapping
  ``heartline.alerts.rules.ventricular.premature_beats``; it is not part of the product.

Usage (from the repository root)::

    PYTHONPATH=src python benchmarks/alarms_false_v/run.py --plot A07090 A01132 A05417 A01755 \
        --out docs/results/alarms/false-ventricular-2026-12-07/records.png
    PYTHONPATH=src python benchmarks/alarms_false_v/run.py --half dev
    PYTHONPATH=src python benchmarks/alarms_false_v/run.py --half dev --prior
"""

from __future__ import annotations

import argparse
import collections
import json
import warnings
from pathlib import Path

import numpy as np

import heartline.alerts.rules.ventricular as ventricular
import heartline.bench.alarms as bench_alarms
from heartline.edge.rhythm import OnnxRhythmClassifier
from heartline.ingestion.replay import REPLAY_T0_S, shipped_beat_model
from heartline.io.readers import read_ecg

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"


def with_sinus_prior(premature_beats):  # noqa: ANN001, ANN201
    """``premature_beats`` that also drops V runs fitting inside one sinus cycle."""

    def wrapped(series, prematurity):  # noqa: ANN001, ANN202
        out = premature_beats(series, prematurity)
        n = len(series)
        if n < 4:
            return out
        lab, t = series.label, series.time_s
        rr, valid = series.rr_s, series.rr_valid()
        nn = valid & (lab[:-1] == "N") & (lab[1:] == "N")
        pool = rr[nn] if np.count_nonzero(nn) >= 4 else rr[valid]
        if pool.size == 0:
            return out
        ref, tol = float(np.median(pool)), 1.0 - float(prematurity)
        out = out.copy()
        i = 0
        while i < n:
            if lab[i] != "V":
                i += 1
                continue
            j = i
            while j + 1 < n and lab[j + 1] == "V":
                j += 1
            if j > i:
                p = i - 1
                while p >= 0 and lab[p] != "N":
                    p -= 1
                q = j + 1
                while q < n and lab[q] != "N":
                    q += 1
                if p >= 0 and q < n and abs((t[q] - t[p]) - ref) <= tol * ref:
                    out[i : j + 1] = False
            i = j + 1
        return out

    return wrapped


def _labels() -> dict[str, str]:
    text = (DATA / "cinc2017" / "REFERENCE-v3.csv").read_text()
    return dict(line.split(",") for line in text.splitlines())


def _read(rec: str):  # noqa: ANN202
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return read_ecg(DATA / "cinc2017" / rec)


def _replay(rec: str, beat_model, rhythm, capture: list | None = None):  # noqa: ANN001, ANN202
    from heartline.alerts.engine import AlertEngine

    x = _read(rec)
    orig = AlertEngine.add_beats
    if capture is not None:

        def add_beats(self, beats, *, now_s=None):  # noqa: ANN001, ANN202
            from heartline.alerts.rules.events import BeatSeries

            s = beats if isinstance(beats, BeatSeries) else BeatSeries.from_beats(beats)
            capture.append((s.time_s.copy(), s.label.copy()))
            return orig(self, beats, now_s=now_s)

        AlertEngine.add_beats = add_beats
    try:
        rows, *_ = bench_alarms._replay(
            beat_model, bench_alarms.CONFIGS["after"], rhythm, x.signal, x.fs,
            tuple(x.lead_names), rec,
        )
    finally:
        AlertEngine.add_beats = orig
    return x, rows


def plot(records: list[str], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = _labels()
    bm, rh = shipped_beat_model(), OnnxRhythmClassifier()
    fig, axes = plt.subplots(len(records), 1, figsize=(16, 2.6 * len(records)), squeeze=False)
    for ax, rec in zip(axes[:, 0], records, strict=True):
        cap: list = []
        x, rows = _replay(rec, bm, rh, cap)
        t = np.concatenate([c[0] for c in cap]) - REPLAY_T0_S
        lab = np.concatenate([c[1] for c in cap])
        sig = x.signal[:, 0]
        ax.plot(np.arange(sig.size) / x.fs, sig, lw=0.6, color="k")
        for ti, li in zip(t, lab, strict=True):
            if li != "N":
                ax.annotate(li, (ti, sig.max()), color="r", ha="center")
        phys = [r for r in rows if not r.technical]
        for r in phys:
            ax.axvspan(r.start_s, max(r.end_s, r.start_s + 0.5), color="orange", alpha=0.25)
        ax.set_title(
            f"{rec} (label {labels[rec]}): "
            + ", ".join(f"{r.type} at {r.start_s:.1f} s" for r in phys)
        )
        ax.set_ylabel("mV")
    axes[-1, 0].set_xlabel("s")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70)
    print(f"wrote {out}")


def half(part: str, prior: bool) -> dict:
    if prior:
        ventricular.premature_beats = with_sinus_prior(ventricular.premature_beats)
    labels = _labels()
    dev = bench_alarms.cinc_dev_half(labels)
    chosen = bench_alarms.choose_cinc(labels, seed=0, cinc_normal=800, cinc_noisy=None)
    bm, rh = shipped_beat_model(), OnnxRhythmClassifier()
    res = {}
    for lab in ("N", "~"):
        recs = [r for r in chosen[lab] if (r in dev) == (part == "dev")]
        hit, kinds = 0, collections.Counter()
        for rec in recs:
            _x, rows = _replay(rec, bm, rh)
            phys = {r.type for r in rows if not r.technical}
            hit += bool(phys)
            kinds.update(phys)
        res[lab] = {"with_alarm": hit, "n": len(recs), "pct": round(100 * hit / len(recs), 2),
                    "by_type": dict(kinds)}
    out = {"half": part, "sinus_prior": prior, "records": res}
    print(json.dumps(out))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--plot", nargs="+", metavar="REC")
    ap.add_argument("--out", type=Path, default=Path("false-ventricular.png"))
    ap.add_argument("--half", choices=("dev", "held_out"))
    ap.add_argument("--prior", action="store_true")
    a = ap.parse_args()
    if a.plot:
        plot(a.plot, a.out)
    if a.half:
        half(a.half, a.prior)


if __name__ == "__main__":
    main()

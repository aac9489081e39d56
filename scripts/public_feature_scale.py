"""Location and scale of the rhythm hand features on PUBLIC data that is not CinC 2017.

The DP feature model (:class:`heartline.models.rhythm.FeatureRhythmNet`) standardises its
inputs with fixed constants, never with statistics of the hospitals' data (those would be a
release of private data outside the DP-SGD accounting). This script computes them once, on

* MIT-BIH Arrhythmia (all 48 records, lead 0, non-overlapping 30 s segments, at most
  ``--segments`` per record, at 360 Hz), and
* PTB-XL (the records on disk, lead I, 10 s at 100 Hz),

as the median and ``IQR / 1.349`` of every :data:`heartline.features.rhythm.HAND_FEATURE_NAMES`
column (robust: a scale of 0 becomes 1), and prints a Python literal pasted into
:mod:`heartline.features.public_scale`. Usage::

    OMP_NUM_THREADS=1 nice -n 10 python scripts/public_feature_scale.py --data-dir /work/shared/data
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data-dir", default=None)
    p.add_argument("--segments", type=int, default=20)
    a = p.parse_args(argv)
    import wfdb

    from heartline.data.paths import database_dir
    from heartline.data.ptbxl import load_ptbxl
    from heartline.features.rhythm import HAND_FEATURE_NAMES, rhythm_hand_features

    rows = []
    mit = database_dir("mitdb", data_dir=a.data_dir)
    names = sorted(p.stem for p in mit.glob("*.hea"))
    for rec in names:
        r = wfdb.rdrecord(str(mit / rec), channels=[0], physical=True)
        x = np.asarray(r.p_signal[:, 0], dtype=np.float64)
        seg = round(30 * r.fs)
        for k in range(min(a.segments, x.size // seg)):
            rows.append(rhythm_hand_features(x[k * seg : (k + 1) * seg], fs=float(r.fs)))
    n_mit = len(rows)
    ds = load_ptbxl(fs=100, data_dir=a.data_dir, leads=("I",))
    for x in np.asarray(ds.signals):
        rows.append(rhythm_hand_features(np.asarray(x).reshape(-1), fs=100.0))
    f = np.stack(rows).astype(np.float64)
    loc = np.median(f, axis=0)
    q75, q25 = np.percentile(f, [75, 25], axis=0)
    scale = (q75 - q25) / 1.349
    scale = np.where(scale > 1e-9, scale, 1.0)
    print(f"# {n_mit} MIT-BIH segments, {len(rows) - n_mit} PTB-XL records", file=sys.stderr)
    print("PUBLIC_HAND_SCALE: dict[str, tuple[float, float]] = {")
    for name, lo, sc in zip(HAND_FEATURE_NAMES, loc, scale, strict=True):
        print(f'    "{name}": ({lo:.6g}, {sc:.6g}),')
    print("}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

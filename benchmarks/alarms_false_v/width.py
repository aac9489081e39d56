"""Width of V-labelled beats: MIT-BIH DS1 (MLII, single-lead model) vs CinC false-alarm records.

Runs the shipped single-lead beat pipeline (1 s chunks, as the stream processor feeds it) and
measures, on each beat's own model window (128 samples over 0.7 s, amplitude-normalised), the
full width at half maximum of the largest deflection in the QRS search area. Writes
``width_<what>.json`` in ``--out`` (default: the current folder) and prints percentiles.

    PYTHONPATH=src python benchmarks/alarms_false_v/width.py mitdb
    PYTHONPATH=src python benchmarks/alarms_false_v/width.py cinc A07090 A01132 A05417 A01755 A02317 A07031
"""
import sys, warnings, json, numpy as np
from pathlib import Path
from heartline.edge.model_select import beat_model_specs
from heartline.edge.runtime import OnnxBeatClassifier
from heartline.pipeline.beat_pipeline import BeatPipeline, classify_batches
from heartline.io.readers import read_ecg
import wfdb
spec = min((s for s in beat_model_specs() if s.installed), key=lambda s: s.n_leads)
model = OnnxBeatClassifier(spec.onnx_path)
root = Path(__file__).resolve().parents[2].parent / 'shared' / 'data'

def run(sig, fs, leads):
    p = BeatPipeline(fs=fs, lead_names=leads, model=model)
    W, S, L, Q = [], [], [], []
    step = int(round(fs))
    def take(bb):
        if len(bb) == 0: return
        pr = classify_batches(model, [bb])[0]
        for b, w in zip(p.complete(bb, pr), bb.windows):
            W.append(w[-1, 0]); S.append(b.sample_idx); L.append(b.label); Q.append(b.quality_ok)
    for i in range(0, sig.shape[0], step):
        take(p.prepare(sig[i:i+step]))
    take(p.flush_prepare())
    return np.array(W), np.array(S), np.array(L), np.array(Q)

def fwhm(w):
    # width (samples) of the connected region around the window's largest |deviation| within the
    # QRS search area where |x - median| >= half its peak
    x = w - np.median(w)
    c = int(np.argmax(np.abs(x[30:62]))) + 30
    h = abs(x[c]) / 2
    sgn = np.sign(x[c])
    a = c
    while a > 0 and sgn * x[a - 1] >= h: a -= 1
    b = c
    while b < len(x) - 1 and sgn * x[b + 1] >= h: b += 1
    return b - a + 1

what = sys.argv[1]
out = []
if what == 'mitdb':
    DS1 = [101,106,108,109,112,114,115,116,118,119,122,124,201,203,205,207,208,209,215,220,223,230]
    for r in DS1:
        rec = wfdb.rdrecord(str(root/'mitdb'/str(r)))
        i = rec.sig_name.index('MLII')
        sig = rec.p_signal[:, [i]]
        ann = wfdb.rdann(str(root/'mitdb'/str(r)), 'atr')
        vs = ann.sample[np.isin(ann.symbol, ['V', 'E'])]
        W, S, L, Q = run(sig, rec.fs, ('MLII',))
        for w, s, l in zip(W, S, L):
            isv = vs.size and np.min(np.abs(vs - s)) < 0.15 * rec.fs
            if l == 'V':
                out.append(('true' if isv else 'falseV', r, fwhm(w)))
            elif isv:
                out.append(('missedV', r, fwhm(w)))
            else:
                out.append(('nonV', r, fwhm(w))) if np.random.rand() < 0.05 else None
else:
    for r in sys.argv[2:]:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore'); x = read_ecg(root/'cinc2017'/r)
        W, S, L, Q = run(x.signal, x.fs, tuple(x.lead_names))
        for w, l, s in zip(W, L, S):
            out.append((l, r, fwhm(w), round(s / x.fs, 2)))
json.dump([[str(v) if isinstance(v, str) else float(v) if not isinstance(v, int) else v for v in o] for o in out], open(f'width_{what}.json', 'w'))
import collections
g = collections.defaultdict(list)
for o in out: g[o[0]].append(o[2])
for k, v in g.items():
    v = np.array(v); print(k, len(v), np.percentile(v, [1, 2, 5, 10, 25, 50, 75]).round(1))

"""RR intervals around the beats of MIT-BIH record 232 by reference label (annotations only).

Run: ``.venv/bin/python docs/benchmarks/models/selection/round7/record232_rr.py``
"""

import numpy as np
import wfdb

ann = wfdb.rdann("../shared/data/mitdb/232", "atr")
sym = np.array(ann.symbol)
beat = np.isin(sym, list("NLRejAaJSVEFQ/f"))
sym, samples = sym[beat], ann.sample[beat]
rr = np.diff(samples) / ann.fs
pre, post = np.r_[np.nan, rr], np.r_[rr, np.nan]
for label in sorted(set(sym)):
    m = sym == label
    print(
        f"{label}: {int(m.sum())} beats; interval before median {np.nanmedian(pre[m]):.2f} s "
        f"(10-90 %: {np.nanquantile(pre[m], 0.1):.2f}-{np.nanquantile(pre[m], 0.9):.2f}), "
        f"after median {np.nanmedian(post[m]):.2f} s"
    )

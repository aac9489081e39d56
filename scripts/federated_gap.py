"""Where does the central-vs-federated gap come from? An in-process replay of the arithmetic.

Not a federation (no Flower, no processes): the same hospitals as ``heartline bench federated``
(same manifests, same local data and validation splits, same :class:`SiteTask`), the server's
aggregation done here in a loop, so that aggregation variants can be compared in minutes. Every
score is the pooled *validation* macro-F1 (the hospitals' own validation parts, summed confusion
matrices); the central test sets (DS2, the held-out fold) are never read, so nothing here tunes
on a test set.

Usage (one thread, nice)::

    OMP_NUM_THREADS=1 nice -n 10 python scripts/federated_gap.py --task beats \
        --variant central --variant fedavg --variant fedavg:server_lr=5 --out gap.jsonl

A variant is ``name[:key=value,...]``: ``central`` (epochs = rounds x local epochs on the union),
``fedavg`` with ``server_lr`` (the averaged update is scaled by it; batch-norm statistics are
averaged, never scaled), ``momentum`` (server momentum, FedAvgM), ``weighting`` (``samples`` or
``uniform``), ``fedbn=1`` (batch-norm parameters and statistics stay local; scored with each
hospital's own), ``la=1`` (per-site logit adjustment,
:func:`heartline.training.local.label_skew_adjustment`), ``lr`` (local learning rate), ``dp_eps`` (record-level DP-SGD, rhythm), ``dp_z`` (DP-SGD at this noise multiplier),
``dp_clip``,
``batch`` (local batch size; not with ``dp_eps``, whose noise is calibrated to the default),
``model`` (rhythm: ``rr-head`` / ``hand-head``, a small head over the 24 RR / 54 hand features,
:data:`heartline.training.local.RHYTHM_HEAD_MODELS`; trained with the public input scaler and
class weights of the published CinC 2017 counts, no pooled statistics) with ``hidden`` (units,
0: linear), ``epochs`` (local epochs per round) and ``bs`` (local batch size; with ``dp_eps`` the
Poisson batch size the noise is calibrated to), ``opt`` (``adamw`` or ``sgd``), ``pla`` (tau of
a logit adjustment by the public prior, with an unweighted loss, instead of the public class
weights; :func:`heartline.training.local.public_rhythm_logit_adjustment`), ``la_exact=1`` (the
per-site label-skew adjustment from the sites' exact label counts: private, an upper bound) or
``la_eps=E`` (from counts released with Laplace noise of scale ``1 / E``: E-DP per site, to add
to ``dp_eps``), ``cw_pow`` (head: the exponent of the public class weights,
:func:`heartline.training.local.rhythm_label_weights` of the published counts; 0.5 by default,
1 = fully inverse-frequency, ``~`` weighted 4.4 instead of 2.1).

``--noise-seed K`` (default 0) redraws the local training's randomness (DP-SGD noise, Poisson
batches, shuffles) at the same partition, sites and initialisation: the round seed of round
``r`` becomes ``r + 10007 * K``; ``K = 0`` is the earlier replay exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

STAT_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def _parse(v: str) -> tuple[str, dict]:
    name, _, rest = v.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, _, val = kv.partition("=")
        try:
            opts[k] = float(val)
        except ValueError:  # a name (model=hand-head)
            opts[k] = val
    return name, opts


def _load(task: str, hospitals: int, alpha: float, keep: float, seed: int, data_dir, features="rr"):
    from heartline.federated.partition import partition_beats, partition_rhythm
    from heartline.federated.tasks import load_site_data

    if task == "beats":
        m = partition_beats(hospitals, seed=seed, data_dir=data_dir)
    else:
        m = partition_rhythm(hospitals, alpha=alpha, seed=seed, data_dir=data_dir)
    return [
        load_site_data(
            task,
            h.records,
            data_dir=data_dir,
            keep_normal=keep,
            seed=seed + h.partition_id,
            features=features,
        )
        for h in m.hospitals
    ]


def _pool(task, sites):
    from heartline.federated.tasks import SiteData

    if task == "beats":
        from heartline.data.beat_set import concat_beat_sets

        return SiteData(
            concat_beat_sets([s.train for s in sites]), concat_beat_sets([s.val for s in sites]), ()
        )
    from heartline.bench.federated import _concat_rhythm

    return SiteData(
        _concat_rhythm([s.train for s in sites]), _concat_rhythm([s.val for s in sites]), ()
    )


_BN: list[str] = []
LAST_CONF: list = [None]  # pooled validation confusion matrix of the last score
KEEP = [0.3]
NOISE_SEED = [0]  # --noise-seed: offset of every round seed (0: the earlier replay)
#: KEEP: the share of N records kept (rhythm), for the public class weights;
#: NOISY: the Laplace-noised label counts of the sites (la_eps)
NOISY: list = [None, []]


def _is_bn(k: str) -> bool:
    """A batch-norm parameter or statistic (prefixes set from the network, see run_variant)."""
    return any(k.startswith(p + ".") for p in _BN)


def _slice(task, data, epoch, part, parts, seed):
    """``data`` whose training part keeps only slice ``part`` of ``parts`` of a per-epoch
    permutation (beats: the other beats lose their label and stay as context)."""
    import dataclasses

    rng = np.random.default_rng([seed, epoch])
    if task == "beats":
        lab = np.flatnonzero(data.train.labels >= 0)
        keep = np.array_split(rng.permutation(lab), parts)[part]
        labels = np.full_like(data.train.labels, -1)
        labels[keep] = data.train.labels[keep]
        return dataclasses.replace(data, train=dataclasses.replace(data.train, labels=labels))
    idx = np.sort(np.array_split(rng.permutation(len(data.train)), parts)[part])
    mask = np.zeros(len(data.train), dtype=bool)
    mask[idx] = True
    return dataclasses.replace(data, train=data.train.subset(mask))


def _public_prior(t, o) -> None:
    """``pla=tau``: unweighted loss + logit adjustment by the public prior instead of weights;
    ``cw_pow=p``: public class weights with exponent ``p`` (published counts only)."""
    if o.get("cw_pow"):
        from heartline.training.local import CINC2017_PUBLISHED_COUNTS, rhythm_label_weights

        c = np.asarray(CINC2017_PUBLISHED_COUNTS, dtype=np.float64)
        c[0] *= KEEP[0]
        t.set_class_weights(rhythm_label_weights(c, power=float(o["cw_pow"])).tolist())
    if o.get("pla"):
        import dataclasses

        from heartline.training.local import public_rhythm_logit_adjustment

        adj = public_rhythm_logit_adjustment(KEEP[0], tau=float(o["pla"]))
        t.cfg = dataclasses.replace(t.cfg, class_weights=(1.0,) * 4, logit_adjustment=adj)


def run_variant(task, sites, pooled, name, o, rounds, seed):
    import dataclasses

    from heartline.federated.tasks import NOISE_SEED_STRIDE, SiteTask
    from heartline.training.local import confusion_macro_f1, state_arrays

    lr = o.get("lr", 2e-3)
    dp = o.get("dp_eps")
    clip = o.get("dp_clip", 1.0)
    model = str(o.get("model", "hybrid"))
    head = model != "hybrid"
    # a hand-feature head: its own model, local epochs and batch size; class weights from the
    # published CinC 2017 counts and the public input scaler (no pooled statistics of the sites)
    kw = dict(
        model=model,
        hidden=int(o.get("hidden", 0)),
        epochs=int(o.get("epochs", 1)),
        batch_size=int(o.get("bs", 64)),
        optimizer=str(o.get("opt", "adamw")),
    )

    def tune(t):
        if o.get("dpnet"):  # the DP-compatible network (GroupNorm, DPLSTM), trained without DP
            from heartline.federated.tasks import build_net

            t.net = build_net(task, seed=seed, dp=True)
        if "dp_z" in o:  # DP-SGD at this noise multiplier directly (no epsilon calibration)
            from heartline.federated.tasks import build_net

            t.net = build_net(task, seed=seed, dp=True)
            t.cfg = dataclasses.replace(t.cfg, dp_noise_multiplier=o["dp_z"], dp_clip=clip)
        if "batch" in o:
            t.cfg = dataclasses.replace(t.cfg, batch_size=int(o["batch"]))
        return t

    if name == "central":
        st = tune(
            SiteTask(
                task, pooled, lr=lr, seed=seed, dp_epsilon=dp, dp_rounds=rounds, dp_clip=clip, **kw
            )
        )
        if head:
            from heartline.training.local import public_rhythm_class_weights

            st.set_class_weights(public_rhythm_class_weights(KEEP[0]).tolist())
            _public_prior(st, o)
        w = state_arrays(st.net)
        curve = [st.evaluate(w).macro_f1]
        for e in range(1, rounds + 1):
            w, _ = st.fit(w, round_seed=e + NOISE_SEED_STRIDE * NOISE_SEED[0], rounds_done=e)
            ev = st.evaluate(w)
            LAST_CONF[0] = ev.confusion
            curve.append(ev.macro_f1)
        return curve
    server_lr = o.get("server_lr", 1.0)
    beta = o.get("momentum", 0.0)
    fedbn = bool(o.get("fedbn", 0))
    tasks = [
        tune(
            SiteTask(task, s, lr=lr, seed=seed, dp_epsilon=dp, dp_rounds=rounds, dp_clip=clip, **kw)
        )
        for s in sites
    ]
    if head:
        from heartline.training.local import public_rhythm_class_weights

        for t in tasks:
            t.set_class_weights(public_rhythm_class_weights(KEEP[0]).tolist())
            _public_prior(t, o)
    # pooled class weights (and RR scaler), as the federation's statistics query sets them
    from heartline.training.local import pooled_statistics

    site_stats = [t.statistics() for t in tasks]
    stats = pooled_statistics(task, site_stats)
    pooled_counts = np.sum([s_["label-counts"] for s_ in site_stats], axis=0)
    if o.get("la_eps"):
        rng = np.random.default_rng([seed, 7])
        NOISY[0] = [
            np.maximum(np.asarray(s_["label-counts"]) + rng.laplace(0, 1 / o["la_eps"], 4), 0)
            for s_ in site_stats
        ]
        NOISY[1] = []
    for t, s_ in zip(tasks, site_stats, strict=True):
        if head:
            if o.get("la_exact") or o.get("la_eps"):
                # la_exact: upper bound, the sites' exact (private) label counts; la_eps: each
                # site releases its counts with Laplace noise of scale 1 / la_eps (la_eps-DP)
                from heartline.training.local import (
                    label_skew_adjustment,
                    public_rhythm_class_weights,
                )

                own, pool = np.asarray(s_["label-counts"]), pooled_counts
                if o.get("la_eps"):
                    own, pool = NOISY[0][len(NOISY[1])], np.sum(NOISY[0], axis=0)
                    NOISY[1].append(1)
                adj, cw = label_skew_adjustment(own, pool, public_rhythm_class_weights(KEEP[0]))
                t.cfg = dataclasses.replace(t.cfg, logit_adjustment=adj, class_weights=cw)
            continue
        t.set_class_weights(stats["class-weights"])
        if o.get("la"):  # per-site logit adjustment towards central's prior
            from heartline.training.local import label_skew_adjustment

            adj, cw = label_skew_adjustment(
                np.asarray(s_["label-counts"]), pooled_counts, np.asarray(stats["class-weights"])
            )
            t.cfg = dataclasses.replace(t.cfg, logit_adjustment=adj, class_weights=cw)
    import torch

    _BN[:] = [
        n
        for n, m in tasks[0].net.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
    ]
    w = state_arrays(tasks[0].net)
    if task == "rhythm" and not head:
        import torch

        net = tasks[0].net
        net.set_rr_scaler(
            torch.tensor(stats["rr-mean"], dtype=torch.float32),
            torch.tensor(stats["rr-std"], dtype=torch.float32),
        )
        w = state_arrays(net)
    local = [dict(w) for _ in tasks]
    vel = {k: np.zeros_like(v, dtype=np.float64) for k, v in w.items()}

    def score(gw):
        conf = 0
        for i, t in enumerate(tasks):
            ww = {**gw, **{k: v for k, v in local[i].items() if _is_bn(k)}} if fedbn else gw
            conf = conf + t.evaluate(ww).confusion
        LAST_CONF[0] = conf
        return confusion_macro_f1(conf)

    curve = [score(w)]
    parts = int(o.get("parts", 1))  # a round trains on 1/parts of each site's data
    full = [t.data for t in tasks]
    for r in range(1, rounds * parts + 1):
        outs, ns = [], []
        for i, t in enumerate(tasks):
            start = {**w, **{k: v for k, v in local[i].items() if _is_bn(k)}} if fedbn else w
            if parts > 1:
                t.data = _slice(task, full[i], (r - 1) // parts, (r - 1) % parts, parts, seed + i)
            new, met = t.fit(start, round_seed=r + NOISE_SEED_STRIDE * NOISE_SEED[0], rounds_done=r)
            outs.append(new)
            ns.append(met["num-examples"] if o.get("weighting", 0) == 0 else 1.0)
            local[i] = new
        ns = np.asarray(ns, dtype=float) / sum(ns)
        nw = {}
        for k, v in w.items():
            avg = sum(n * o_[k].astype(np.float64) for n, o_ in zip(ns, outs, strict=True))
            if k.endswith(STAT_SUFFIXES) or not np.issubdtype(v.dtype, np.floating):
                nw[k] = avg.astype(v.dtype)
                continue
            delta = avg - v
            vel[k] = beta * vel[k] + delta
            nw[k] = (v + server_lr * vel[k]).astype(v.dtype)
        w = nw
        if r % parts == 0:
            curve.append(score(w))
    return curve


def main(argv=None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--task", choices=("beats", "rhythm"), required=True)
    p.add_argument("--variant", action="append", required=True)
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--hospitals", type=int, default=5)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--keep-normal", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise-seed", type=int, default=0)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    keep = a.keep_normal if a.keep_normal is not None else (0.1 if a.task == "beats" else 0.3)
    t0 = time.process_time()
    KEEP[0] = keep
    NOISE_SEED[0] = a.noise_seed
    loaded = {}
    for v in a.variant:
        name, o = _parse(v)
        from heartline.federated.tasks import model_features

        feats = model_features(str(o.get("model", "hybrid"))) if a.task == "rhythm" else "rr"
        if feats not in loaded:
            sites = _load(a.task, a.hospitals, a.alpha, keep, a.seed, a.data_dir, features=feats)
            loaded[feats] = (sites, _pool(a.task, sites))
            print(f"loaded {len(sites)} sites in {time.process_time() - t0:.0f} CPU s", flush=True)
        sites, pooled = loaded[feats]
        t = time.process_time()
        curve = run_variant(a.task, sites, pooled, name, o, a.rounds, a.seed)
        rec = {
            "task": a.task,
            "variant": v,
            "rounds": a.rounds,
            "seed": a.seed,
            "noise_seed": a.noise_seed,
            "hospitals": a.hospitals,
            "alpha": a.alpha if a.task == "rhythm" else None,
            "val_macro_f1": [round(c, 4) for c in curve],
            "cpu_s": round(time.process_time() - t, 1),
            "val_confusion": np.asarray(LAST_CONF[0]).tolist(),
        }
        print(json.dumps(rec), flush=True)
        if a.out:
            with Path(a.out).open("a") as f:
                f.write(json.dumps(rec) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

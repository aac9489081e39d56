import sys, time, json, logging
from pathlib import Path
from heartline.bench import stream as bs
from heartline.ingestion.broker import MosquittoSupervisor
from heartline.ingestion.live import ARRHYTHMIA_RECORDS
from heartline.storage import upgrade_database
from heartline.edge.shipped import shipped_model_path
def main():
    n = int(sys.argv[1]); dur = int(sys.argv[2]); out = Path(sys.argv[3]); reps = int(sys.argv[4]) if len(sys.argv) > 4 else 1
    out.mkdir(parents=True, exist_ok=True)
    frames = bs._FramePool(ARRHYTHMIA_RECORDS, 60, None)
    db = f"sqlite:///{out/'heartline.db'}"
    upgrade_database(db)
    with MosquittoSupervisor(out / "broker") as broker:
        pool = bs._ProcessorPool(host=broker.address.host, port=broker.address.port, db_url=db, model=shipped_model_path(), workers=2, n_partitions=8)
        try:
            setup = bs._Setup("default", broker.address, db, pool)
            for r in range(reps):
                res = bs._step(setup, frames, n, dur, 8, f"s{r}x", drain_s=30)
                print(json.dumps({k: res[k] for k in ("patients","frames_lost","p50_latency_s","p99_latency_s","p99_receipt_to_commit_s")} | {k: v for k, v in res.items() if "cpu" in k}), flush=True)
        finally:
            pool.stop()

if __name__ == '__main__':
    main()

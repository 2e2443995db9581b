#!/usr/bin/env python3
"""Reference numbers from faiss IVF-SQ8 on the same files Drift is measured on.

Usage: python3 lab/scripts/faiss_baseline.py BASE.fvecs QUERIES.fvecs [--nlist 100] [--nprobe 32 ...]
Needs: pip install faiss-cpu numpy. Single thread; recall@10 against brute force; QPS both
batched (all queries in one call) and one query per call (how Drift's numbers are taken).
"""
import argparse
import time

import numpy as np


def read_fvecs(path):
    raw = np.fromfile(path, dtype=np.int32)
    dim = raw[0]
    return raw.reshape(-1, dim + 1)[:, 1:].view(np.float32).copy()


def main():
    import faiss

    p = argparse.ArgumentParser()
    p.add_argument("base")
    p.add_argument("queries")
    p.add_argument("--nlist", type=int, default=100)
    p.add_argument("--nprobe", type=int, nargs="+", default=[8, 16, 32])
    p.add_argument("-k", type=int, default=10)
    a = p.parse_args()
    faiss.omp_set_num_threads(1)
    xb, xq = read_fvecs(a.base), read_fvecs(a.queries)
    d = xb.shape[1]
    flat = faiss.IndexFlatL2(d)
    flat.add(xb)
    gt_d, _ = flat.search(xq, a.k)
    index = faiss.index_factory(d, f"IVF{a.nlist},SQ8")
    index.train(xb)
    index.add(xb)
    for nprobe in a.nprobe:
        index.nprobe = nprobe
        t = time.perf_counter()
        _, ids = index.search(xq, a.k)
        batched = len(xq) / (time.perf_counter() - t)
        reps = max(1, 2000 // len(xq))
        t = time.perf_counter()
        for _ in range(reps):
            for q in xq:
                index.search(q[None, :], a.k)
        single = reps * len(xq) / (time.perf_counter() - t)
        # recall with ties: a returned id counts if its exact distance is within the true k-th
        hits = 0
        for qi in range(len(xq)):
            kth = gt_d[qi, a.k - 1]
            ex = ((xb[ids[qi][ids[qi] >= 0]] - xq[qi]) ** 2).sum(axis=1)
            hits += int((ex <= kth * (1 + 1e-6) + 1e-12).sum())
        recall = hits / (len(xq) * a.k)
        print(f"faiss {faiss.__version__} IVF{a.nlist},SQ8 nprobe {nprobe}: recall@{a.k} {recall:.3f}, "
              f"{batched:,.0f} qps batched, {single:,.0f} qps one query per call")


if __name__ == "__main__":
    main()

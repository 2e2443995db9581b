#!/usr/bin/env python3
"""Peer adapter: the indexes a Drift user would pick instead (faiss IVF-SQ8, faiss IVF-Flat,
hnswlib), driven by the lab over a line protocol so that every system sees the same files,
the same steps and the same ground truth (the lab scores; this process only answers).

Protocol: one JSON object per line on stdin, one JSON reply per line on stdout.
  {"op": "open", "system": "hnswlib" | "faiss_ivf_sq8" | "faiss_ivf_flat",
   "dim": D, "metric": "l2" | "cosine" | "ip", "params": {...}}
  {"op": "insert", "file": PATH, "start": A, "end": B}      rows [A, B) of a vector file;
                                                              their ids are their row numbers
  {"op": "insert", "file": PATH, "ids": [...]}               every row of the file, given ids
  {"op": "delete", "ids": [...]}
  {"op": "search", "file": PATH, "start": A, "end": B, "k": K, "knob": N}
        one query per call, single thread; replies {"ids": [[...]], "ns": [...]}
  {"op": "stats"}                                            memory and build figures
  {"op": "quit"}
Every reply carries "ok"; a failure replies {"ok": false, "error": "..."} and the process
stays usable. Vector files: .fvecs .bvecs .fbin .u8bin .npy (the lab's readers, same ids).

Params: hnswlib M (16), ef_construction (200), max_elements (grows as needed);
faiss nlist (4 * sqrt(rows of the first insert)), retrain (false: trained on the first
insert as Big-ANN's static baselines are; true: retrained on every live row at each insert).
The knob is hnswlib's ef or faiss's nprobe.
"""
import json
import os
import sys
import time

import numpy as np


def read_vectors(path, start=0, end=None):
    """Rows [start, end) of a vector file as float32, like drift_lab::vecfile."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npy":
        arr = np.load(path, mmap_mode="r")
        if arr.ndim != 2:
            raise ValueError(f"{path}: expected a 2-D array, found shape {arr.shape}")
        out = arr[start:end]
    elif ext in (".fvecs", ".bvecs"):
        elem = np.float32 if ext == ".fvecs" else np.uint8
        size = np.dtype(elem).itemsize
        dim = int(np.fromfile(path, dtype=np.int32, count=1)[0])
        row = 4 + dim * size
        raw = np.memmap(path, dtype=np.uint8, mode="r")
        rows = raw.reshape(-1, row)[start:end, 4:]
        out = np.ascontiguousarray(rows).view(elem).reshape(-1, dim)
    elif ext in (".fbin", ".u8bin"):
        elem = np.float32 if ext == ".fbin" else np.uint8
        n, dim = (int(x) for x in np.fromfile(path, dtype=np.uint32, count=2))
        data = np.memmap(path, dtype=elem, mode="r", offset=8, shape=(n, dim))
        out = data[start:end]
    else:
        raise ValueError(f"{path}: unknown file type {ext!r}")
    return np.ascontiguousarray(out, dtype=np.float32)


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Hnsw:
    def __init__(self, dim, metric, params):
        import hnswlib

        space = {"l2": "l2", "cosine": "cosine", "ip": "ip"}[metric]
        self.index = hnswlib.Index(space=space, dim=dim)
        self.m = int(params.get("M", 16))
        self.efc = int(params.get("ef_construction", 200))
        self.cap = int(params.get("max_elements", 1024))
        self.index.init_index(max_elements=self.cap, M=self.m, ef_construction=self.efc,
                              random_seed=int(params.get("seed", 100)), allow_replace_deleted=False)
        self.index.set_num_threads(1)
        self.live = 0
        self.deleted = set()

    def insert(self, x, ids):
        need = self.index.get_current_count() + len(ids)
        if need > self.cap:
            self.cap = max(need, self.cap * 2)
            self.index.resize_index(self.cap)
        # A deleted id inserted again comes back to life (hnswlib replaces its vector).
        for i in ids:
            if int(i) in self.deleted:
                self.index.unmark_deleted(int(i))
                self.deleted.discard(int(i))
        self.index.add_items(x, ids, num_threads=1)
        self.live = self.index.get_current_count() - len(self.deleted)

    def delete(self, ids):
        for i in ids:
            self.index.mark_deleted(int(i))
            self.deleted.add(int(i))
        self.live = self.index.get_current_count() - len(self.deleted)

    def set_knob(self, ef, k):
        self.index.set_ef(max(int(ef), k))

    def search(self, q, k):
        labels, _ = self.index.knn_query(q[None, :], k=min(k, max(self.live, 1)), num_threads=1)
        return labels[0]

    def bytes(self):
        # Vectors, level-0 links and ids per element (hnswlib's own layout).
        n = self.index.get_current_count()
        return n * (self.index.dim * 4 + self.m * 2 * 4 + 4 + 8)


class FaissIvf:
    def __init__(self, dim, metric, params, code):
        import faiss

        faiss.omp_set_num_threads(1)
        self.faiss = faiss
        self.dim = dim
        self.metric = metric
        self.code = code
        self.nlist = params.get("nlist")
        self.retrain = bool(params.get("retrain", False))
        self.index = None
        self.rows = {}  # id -> vector, kept only for retraining

    def _prep(self, x):
        if self.metric == "cosine":
            x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
        return np.ascontiguousarray(x, dtype=np.float32)

    def _build(self, x, ids):
        f = self.faiss
        nlist = int(self.nlist or max(1, round(4 * np.sqrt(len(x)))))
        nlist = max(1, min(nlist, len(x) // 39 or 1))
        mt = f.METRIC_INNER_PRODUCT if self.metric in ("ip", "cosine") else f.METRIC_L2
        quant = f.IndexFlatIP(self.dim) if mt == f.METRIC_INNER_PRODUCT else f.IndexFlatL2(self.dim)
        if self.code == "sq8":
            index = f.IndexIVFScalarQuantizer(quant, self.dim, nlist, f.ScalarQuantizer.QT_8bit, mt)
        else:
            index = f.IndexIVFFlat(quant, self.dim, nlist, mt)
        # The quantizer stays owned by its Python object (kept here), not by the index: a
        # retrain replaces both, and an index owning it as well would free it twice.
        self._quant = quant
        index.train(x)
        index.add_with_ids(x, ids.astype(np.int64))
        self.index = index
        self.used_nlist = nlist

    def insert(self, x, ids):
        x = self._prep(x)
        if self.retrain:
            for i, v in zip(ids, x):
                self.rows[int(i)] = v
        if self.index is None:
            self._build(x, ids)
        elif self.retrain:
            keys = np.fromiter(self.rows.keys(), dtype=np.int64)
            self._build(np.stack(list(self.rows.values())), keys)
        else:
            # Replacing an id: drop the old copy first, as an upsert does.
            self.index.remove_ids(np.asarray(ids, dtype=np.int64))
            self.index.add_with_ids(x, np.asarray(ids, dtype=np.int64))

    def delete(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        for i in ids:
            self.rows.pop(int(i), None)
        if self.index is not None:
            self.index.remove_ids(ids)

    def set_knob(self, nprobe, k):
        if self.index is not None:
            self.index.nprobe = max(1, min(int(nprobe), self.used_nlist))

    def search(self, q, k):
        if self.index is None:
            return np.empty(0, dtype=np.int64)
        _, labels = self.index.search(self._prep(q[None, :]), k)
        return labels[0][labels[0] >= 0]

    def bytes(self):
        if self.index is None:
            return 0
        n = self.index.ntotal
        code = self.dim if self.code == "sq8" else self.dim * 4
        return n * (code + 8) + self.used_nlist * self.dim * 4


def make(system, dim, metric, params):
    if system == "hnswlib":
        return Hnsw(dim, metric, params)
    if system == "faiss_ivf_sq8":
        return FaissIvf(dim, metric, params, "sq8")
    if system == "faiss_ivf_flat":
        return FaissIvf(dim, metric, params, "flat")
    raise ValueError(f"unknown peer system {system!r} (hnswlib, faiss_ivf_sq8, faiss_ivf_flat)")


def versions():
    out = {}
    try:
        import faiss

        out["faiss"] = faiss.__version__
    except ImportError:
        pass
    try:
        import importlib.metadata as md

        out["hnswlib"] = md.version("hnswlib")
    except Exception:
        pass
    out["numpy"] = np.__version__
    return out


def main():
    index = None
    build_s = 0.0
    rss_open = rss_bytes()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            cmd = json.loads(line)
            op = cmd.get("op")
            if op == "open":
                rss_open = rss_bytes()
                index = make(cmd["system"], int(cmd["dim"]), cmd.get("metric", "l2"),
                             cmd.get("params") or {})
                build_s = 0.0
                reply = {"ok": True, "versions": versions()}
            elif op == "quit":
                print(json.dumps({"ok": True}), flush=True)
                return
            elif index is None:
                raise ValueError(f"{op!r} before open")
            elif op == "insert":
                start = int(cmd.get("start", 0))
                end = cmd.get("end")
                x = read_vectors(cmd["file"], start, end)
                if "ids" in cmd:
                    ids = np.asarray(cmd["ids"], dtype=np.int64)
                    if len(ids) != len(x):
                        raise ValueError(f"{len(ids)} ids for {len(x)} rows")
                else:
                    ids = np.arange(start, start + len(x), dtype=np.int64)
                t = time.perf_counter()
                index.insert(x, ids)
                build_s += time.perf_counter() - t
                reply = {"ok": True, "rows": len(x)}
            elif op == "delete":
                t = time.perf_counter()
                index.delete(cmd["ids"])
                build_s += time.perf_counter() - t
                reply = {"ok": True}
            elif op == "search":
                q = read_vectors(cmd["file"], int(cmd.get("start", 0)), cmd.get("end"))
                k = int(cmd.get("k", 10))
                index.set_knob(cmd["knob"], k)
                ids, ns = [], []
                for row in q:
                    t = time.perf_counter_ns()
                    found = index.search(row, k)
                    ns.append(time.perf_counter_ns() - t)
                    ids.append([int(i) for i in found])
                reply = {"ok": True, "ids": ids, "ns": ns}
            elif op == "stats":
                reply = {"ok": True, "bytes": int(index.bytes()),
                         "rss_growth": max(0, rss_bytes() - rss_open), "build_s": build_s}
            else:
                raise ValueError(f"unknown op {op!r}")
        except Exception as e:  # the lab reports the message; the process stays usable
            reply = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()

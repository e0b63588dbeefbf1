#!/usr/bin/python3
"""The serving peer of issue 5: the typical Python deployment of a factor model.

FastAPI + uvicorn + numpy serve the factors exported by `recforge_export_factors`
(P.npy, Q.npy, optional biases, the users' training items as CSR) with the request
shape of `recforge serve`:

  POST /recommend {"user_id": "...", "top_k": 10, "exclude_seen": true}
    -> {"user_id", "items": [{"item_id", "score"}], "model": {...}, "source": "model"}

scores = Q @ P[u] (+ biases), the user's training items masked with -inf, top-k by
np.argpartition then a sort of the k. An unknown user gets the most popular items
(source "fallback:popular"). GET /health answers when the worker has loaded.

Configured as a careful Python team would: one uvicorn worker per core, one BLAS
thread per worker (OPENBLAS_NUM_THREADS=1: with default threading two workers fight
over the cores), no access log, an `async def` handler (no thread-pool hop for a
sub-millisecond numpy call), plain dicts returned (no response-model validation), and
TCP_NODELAY on the connections (see main(): uvicorn 0.17's multi-worker mode loses it).

  bench/peer/fastapi_server.py FACTORS_DIR [--host 127.0.0.1] [--port 8601] [--workers 2]

Run it with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset (see bench/peer/serve_bench.py).
"""
import argparse
import json
import os
import sys

# Before numpy loads OpenBLAS, in this process and (inherited) in every worker.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from fastapi import FastAPI  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

FACTORS_ENV = "RECFORGE_PEER_FACTORS"


class Factors:
    def __init__(self, path):
        self.meta = json.load(open(os.path.join(path, "meta.json")))
        self.P = np.load(os.path.join(path, "P.npy"))
        self.Q = np.ascontiguousarray(np.load(os.path.join(path, "Q.npy")))
        self.user_bias = self._optional(path, "user_bias.npy")
        item_bias = self._optional(path, "item_bias.npy")
        self.global_bias = float(self.meta.get("global_bias", 0.0))
        # Folded into one per-item offset: score = Q @ p + (global + item bias) + user bias.
        self.item_offset = None
        if item_bias is not None or self.global_bias != 0.0:
            offset = np.zeros(self.Q.shape[0], dtype=np.float32) if item_bias is None else item_bias.copy()
            self.item_offset = offset + np.float32(self.global_bias)
        self.indptr = np.load(os.path.join(path, "seen_indptr.npy"))
        self.indices = np.load(os.path.join(path, "seen_indices.npy"))
        with open(os.path.join(path, "user_ids.txt")) as f:
            user_ids = f.read().split("\n")[: self.P.shape[0]]
        with open(os.path.join(path, "item_ids.txt")) as f:
            self.item_ids = f.read().split("\n")[: self.Q.shape[0]]
        self.user_index = {u: i for i, u in enumerate(user_ids)}
        counts = np.bincount(self.indices, minlength=self.Q.shape[0])
        self.popular = np.argsort(-counts, kind="stable")[:1000]
        self.popular_scores = counts[self.popular].astype(np.float64)
        model_file = self.meta.get("model_file") or os.path.normpath(path)
        self.model_info = {"name": os.path.splitext(os.path.basename(model_file))[0], "version": "1",
                           "spec": self.meta.get("spec", "")}

    @staticmethod
    def _optional(path, name):
        full = os.path.join(path, name)
        return np.load(full) if os.path.exists(full) else None

    def recommend(self, user, k, exclude_seen):
        scores = self.Q @ self.P[user]
        if self.item_offset is not None:
            scores += self.item_offset
        if self.user_bias is not None:
            scores += self.user_bias[user]
        if exclude_seen:
            scores[self.indices[self.indptr[user]:self.indptr[user + 1]]] = -np.inf
        n = scores.shape[0]
        k = min(k, n)
        if k < n:
            top = np.argpartition(scores, n - k)[n - k:]
        else:
            top = np.arange(n)
        top = top[np.argsort(-scores[top], kind="stable")]
        values = scores[top]
        ids = self.item_ids
        return [{"item_id": ids[i], "score": float(s)} for i, s in zip(top.tolist(), values.tolist())
                if s != -np.inf]


class RecommendRequest(BaseModel):
    user_id: str
    top_k: int = Field(10, ge=1, le=1000)
    exclude_seen: bool = True


app = FastAPI(title="recforge serving peer (FastAPI + numpy)")
factors = None


@app.on_event("startup")
def load():
    global factors
    factors = Factors(os.environ[FACTORS_ENV])


@app.get("/health")
async def health():
    return {"status": "ok", "users": len(factors.user_index), "items": len(factors.item_ids)}


@app.post("/recommend")
async def recommend(request: RecommendRequest):
    user = factors.user_index.get(request.user_id)
    if user is None:
        top = factors.popular[: request.top_k]
        items = [{"item_id": factors.item_ids[i], "score": float(s)}
                 for i, s in zip(top.tolist(), factors.popular_scores[: request.top_k].tolist())]
        return {"user_id": request.user_id, "items": items, "model": factors.model_info,
                "source": "fallback:popular"}
    items = factors.recommend(user, request.top_k, request.exclude_seen)
    return {"user_id": request.user_id, "items": items, "model": factors.model_info, "source": "model"}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("factors", help="directory written by recforge_export_factors")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8601)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    ap.add_argument("--log-level", default="warning")
    a = ap.parse_args()
    if not os.path.exists(os.path.join(a.factors, "P.npy")):
        sys.exit(f"{a.factors}: no P.npy (run recforge_export_factors first)")
    os.environ[FACTORS_ENV] = os.path.abspath(a.factors)
    # The workers import this file as a module: leave no __pycache__ in the repository.
    os.environ["PYTHONDONTWRITEBYTECODE"] = "1"
    sys.dont_write_bytecode = True
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import socket
    import uvicorn
    from uvicorn.supervisors import Multiprocess
    config = uvicorn.Config("fastapi_server:app", host=a.host, port=a.port, workers=a.workers,
                            access_log=False, log_level=a.log_level)
    # uvicorn.run(workers > 1) binds `socket.socket(family)`, whose proto is 0, so asyncio
    # never sets TCP_NODELAY on the accepted connections and every keep-alive response
    # waits ~40 ms for a delayed ACK (Nagle). Bind the socket ourselves with proto TCP,
    # as a careful team fixing that would; otherwise this is what uvicorn.run does.
    sock = socket.socket(socket.AF_INET6 if ":" in a.host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((a.host, a.port))
    sock.set_inheritable(True)
    server = uvicorn.Server(config=config)
    if a.workers > 1:
        Multiprocess(config, target=server.run, sockets=[sock]).run()
    else:
        server.run(sockets=[sock])


if __name__ == "__main__":
    main()

#!/usr/bin/python3
"""ncf vs a PyTorch NeuMF of the same shape, on the same data, in one run.

Both sides train NeuMF (GMF + MLP towers fused by a linear layer; MLP embedding m per
side, hidden widths m, m/2, ..., relu, dropout after each hidden layer) with binary
cross-entropy on `negatives` uniformly drawn unseen items per interaction and epoch,
Adam (lr, betas 0.9/0.999, eps 1e-8), the same batch size and epochs, on 2 threads:

  ours   `recforge data prepare` (PROTOCOL split) + `recforge train --json` (per-epoch
         seconds from the training callback: negative sampling, shuffle, all batches)
         + `recforge recommend --all-users` for the lists.
  peer   torch (Debian python3-torch), torch.set_num_threads(2); per epoch the
         negatives are drawn with numpy in one vectorised pass (seen items redrawn, up
         to 8 rounds, as ours), the rows are shuffled with one randperm and sliced into
         batches as tensors (no per-sample Python loop); dense nn.Embedding + torch.optim.Adam
         (what the reference NeuMF implementations do). The epoch time covers the same
         steps as ours.

NDCG@10 of both is computed here from the top-10 lists, with an implementation of
../shared/PROTOCOL.md independent of recforge's evaluator (dedup earliest, per-user
split by (time, item), rank every catalog item except the user's train items, ties to
the smaller item id). Each side runs --repeats times; the minimum epoch time is kept
(the machine is shared). Usage:

  /usr/bin/python3 bench/peer/ncf_bench.py [--cli build/release/recforge] [--data ml-100k]
      [--epochs 8] [--repeats 2] [--factors 32 --mlp-factors 32 --layers 3 ...]
  --data anime: anime-caserec ratings (419,943 rows; no timestamps, so the file order is
  the time order) for a larger timing (ml-1m's ratings are not in ../shared/data).
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("RECFORGE_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data"))


# ---------------------------------------------------------------- data + PROTOCOL.md
def read_interactions(name, work):
    """Returns (path of a u.data-format file, rows as int64 array [user, item, time])."""
    if name == "ml-100k":
        path = os.path.join(DATA, "ml-100k", "u.data")
        rows = np.loadtxt(path, dtype=np.int64, usecols=(0, 1, 3))
        return path, rows
    if name == "anime":
        src = os.path.join(DATA, "anime-caserec", "anime_ratings.dat")
        raw = np.loadtxt(src, dtype=np.int64, skiprows=1, usecols=(0, 1))
        rows = np.column_stack([raw, np.arange(len(raw), dtype=np.int64)])
        path = os.path.join(work, "anime.tsv")
        with open(path, "w") as out:
            for user, item, t in rows:
                out.write(f"{user}\t{item}\t1\t{t}\n")
        return path, rows
    sys.exit(f"unknown --data {name}")


def protocol_split(rows):
    """PROTOCOL.md: dedup earliest, per user the last max(1, 20 n // 100) by (time, item)."""
    order = np.lexsort((rows[:, 1], rows[:, 2], rows[:, 0]))  # user, then time, then item
    rows = rows[order]
    seen, kept = set(), []
    for user, item, t in rows:
        if (user, item) in seen:
            continue
        seen.add((user, item))
        kept.append((user, item, t))
    train, test = {}, {}
    by_user = {}
    for user, item, t in kept:
        by_user.setdefault(int(user), []).append(int(item))
    for user, items in by_user.items():
        n_test = max(1, (20 * len(items)) // 100)
        train[user] = items[:-n_test]
        test[user] = items[-n_test:]
    catalog = sorted({int(item) for _, item, _ in kept})
    return train, test, catalog


def ndcg_at_10(lists, test):
    total, users = 0.0, 0
    for user, relevant in test.items():
        if not relevant:
            continue
        relevant = set(relevant)
        ranked = lists.get(user, [])[:10]
        dcg = sum(1.0 / math.log2(r + 2) for r, item in enumerate(ranked) if item in relevant)
        ideal = sum(1.0 / math.log2(r + 2) for r in range(min(10, len(relevant))))
        total += dcg / ideal
        users += 1
    return total / users


# ---------------------------------------------------------------- ours
def run_ours(a, path, work):
    dataset = os.path.join(work, "prepared")
    quiet = ["--threads", str(a.threads), "-q"]
    if not os.path.exists(dataset):
        subprocess.run([a.cli, "data", "prepare", path, "-o", dataset, "--split", "ratio", "--test-ratio", "0.2",
                        "--dedup", "first", "--no-track"] + quiet, check=True, capture_output=True)
    spec = (f"ncf:factors={a.factors},mlp_factors={a.mlp_factors},layers={a.layers},negatives={a.negatives},"
            f"batch_size={a.batch_size},epochs={a.epochs},lr={a.lr},dropout={a.dropout},loss=bce")
    best, lists = None, None
    for repeat in range(a.repeats):
        model = os.path.join(work, "ncf.bin")
        proc = subprocess.run([a.cli, "train", "-d", dataset, "--model", spec, "-o", model, "--json", "--no-track",
                               "--seed", str(42 + repeat)] + quiet, check=True, capture_output=True, text=True)
        summary = json.loads(proc.stdout)
        per_epoch = sum(e["seconds"] for e in summary["epochs"]) / len(summary["epochs"])
        recs = os.path.join(work, "recs.tsv")
        subprocess.run([a.cli, "recommend", "--model", model, "--dataset", dataset, "--all-users", "-k", "10",
                        "-o", recs] + quiet, check=True, capture_output=True)
        run_lists = {}
        with open(recs) as f:
            for line in f:
                user, items = line.rstrip("\n").split("\t")
                run_lists[int(user)] = [int(x) for x in items.split(",") if x]
        if repeat == 0:
            lists = run_lists
        best = per_epoch if best is None else min(best, per_epoch)
        print(f"  ours run {repeat + 1}: {per_epoch:.3f} s/epoch, loss {summary['epochs'][-1]['loss']:.4f}",
              flush=True)
    return best, lists, spec


# ---------------------------------------------------------------- peer
def run_peer(a, train, catalog):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(a.threads)
    users = sorted(train)
    user_index = {u: k for k, u in enumerate(users)}
    item_index = {i: k for k, i in enumerate(catalog)}
    n_users, n_items = len(users), len(catalog)
    pos_u = np.array([user_index[u] for u in users for _ in train[u]], dtype=np.int64)
    pos_i = np.array([item_index[i] for u in users for i in train[u]], dtype=np.int64)
    seen_keys = np.unique(pos_u * n_items + pos_i)

    class NeuMF(nn.Module):
        def __init__(self):
            super().__init__()
            self.user_gmf = nn.Embedding(n_users, a.factors)
            self.item_gmf = nn.Embedding(n_items, a.factors)
            self.user_mlp = nn.Embedding(n_users, a.mlp_factors)
            self.item_mlp = nn.Embedding(n_items, a.mlp_factors)
            layers, width = [], 2 * a.mlp_factors
            for l in range(a.layers):
                out = a.mlp_factors >> l
                layers += [nn.Linear(width, out), nn.ReLU(), nn.Dropout(a.dropout)]
                width = out
            self.mlp = nn.Sequential(*layers)
            self.predict = nn.Linear(a.factors + width, 1)
            for emb in (self.user_gmf, self.item_gmf, self.user_mlp, self.item_mlp):
                nn.init.normal_(emb.weight, std=0.01)
            for m in self.mlp:
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            nn.init.kaiming_uniform_(self.predict.weight, a=1, nonlinearity="sigmoid")
            nn.init.zeros_(self.predict.bias)

        def forward(self, u, i):
            gmf = self.user_gmf(u) * self.item_gmf(i)
            mlp = self.mlp(torch.cat([self.user_mlp(u), self.item_mlp(i)], dim=1))
            return self.predict(torch.cat([gmf, mlp], dim=1)).view(-1)

        @torch.no_grad()
        def score_all(self, u):
            # every item for a block of users: (users x items) pairs through the network
            n = u.shape[0]
            uu = u.repeat_interleave(n_items)
            ii = torch.arange(n_items).repeat(n)
            return self.forward(uu, ii).view(n, n_items)

    best, lists = None, None
    for repeat in range(a.repeats):
        torch.manual_seed(42 + repeat)
        rng = np.random.default_rng(42 + repeat)
        model = NeuMF()
        opt = torch.optim.Adam(model.parameters(), lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
        times = []
        for epoch in range(a.epochs):
            model.train()
            start = time.perf_counter()
            neg = rng.integers(0, n_items, size=(len(pos_u), a.negatives))
            rep_u = np.repeat(pos_u, a.negatives).reshape(-1, a.negatives)
            for _ in range(8):  # redraw negatives that hit a seen item (as ours: up to 8 tries)
                keys = rep_u * n_items + neg
                at = np.searchsorted(seen_keys, keys).clip(max=len(seen_keys) - 1)
                bad = seen_keys[at] == keys
                if not bad.any():
                    break
                neg[bad] = rng.integers(0, n_items, size=int(bad.sum()))
            u = torch.from_numpy(np.concatenate([pos_u, rep_u.ravel()]))
            i = torch.from_numpy(np.concatenate([pos_i, neg.ravel()]))
            y = torch.cat([torch.ones(len(pos_u)), torch.zeros(neg.size)])
            perm = torch.randperm(len(u))
            u, i, y = u[perm], i[perm], y[perm]
            total = 0.0
            for begin in range(0, len(u), a.batch_size):
                ub, ib, yb = u[begin:begin + a.batch_size], i[begin:begin + a.batch_size], y[begin:begin + a.batch_size]
                opt.zero_grad()
                loss = F.binary_cross_entropy_with_logits(model(ub, ib), yb)
                loss.backward()
                opt.step()
                total += loss.item() * len(ub)
            times.append(time.perf_counter() - start)
        per_epoch = sum(times) / len(times)
        print(f"  peer run {repeat + 1}: {per_epoch:.3f} s/epoch, loss {total / len(u):.4f}", flush=True)
        best = per_epoch if best is None else min(best, per_epoch)
        if repeat == 0:
            model.eval()
            lists = {}
            seen_by_user = {user_index[user]: [item_index[i] for i in items] for user, items in train.items()}
            block = 64
            for start_user in range(0, n_users, block):
                ids = torch.arange(start_user, min(n_users, start_user + block))
                scores = model.score_all(ids).numpy().astype(np.float64)
                for row, uidx in enumerate(ids.tolist()):
                    s = scores[row]
                    s[seen_by_user[uidx]] = -np.inf
                    top = np.argsort(-s, kind="stable")[:10]  # ties: smaller item index = smaller id
                    lists[users[uidx]] = [catalog[k] for k in top]
    return best, lists


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cli", default=os.path.join(ROOT, "build", "release", "recforge"))
    ap.add_argument("--data", default="ml-100k", choices=["ml-100k", "anime"])
    ap.add_argument("--work", default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--factors", type=int, default=32)
    ap.add_argument("--mlp-factors", type=int, default=32)
    ap.add_argument("--layers", type=int, default=3)
    ap.add_argument("--negatives", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--lr", type=float, default=0.001)
    ap.add_argument("--dropout", type=float, default=0.3)
    ap.add_argument("--skip-peer", action="store_true")
    a = ap.parse_args()
    work = a.work or tempfile.mkdtemp(prefix=f"ncf-bench-{a.data}-")
    os.makedirs(work, exist_ok=True)
    path, rows = read_interactions(a.data, work)
    train, test, catalog = protocol_split(rows)
    n_train = sum(len(v) for v in train.values())
    n_test = sum(len(v) for v in test.values())
    print(f"{a.data}: {len(train)} users, {len(catalog)} items, {n_train} train / {n_test} test; "
          f"threads={a.threads}, epochs={a.epochs}, repeats={a.repeats}")

    ours_epoch, ours_lists, spec = run_ours(a, path, work)
    ours_ndcg = ndcg_at_10(ours_lists, test)
    print(f"ours  {spec}: {ours_epoch:.3f} s/epoch, NDCG@10 {ours_ndcg:.4f}")
    if a.skip_peer:
        return
    peer_epoch, peer_lists = run_peer(a, train, catalog)
    peer_ndcg = ndcg_at_10(peer_lists, test)
    print(f"peer  torch {__import__('torch').__version__} NeuMF: {peer_epoch:.3f} s/epoch, NDCG@10 {peer_ndcg:.4f}")
    print(f"ratio (peer s/epoch / ours s/epoch): {peer_epoch / ours_epoch:.2f}x; "
          f"NDCG@10 ours - peer: {ours_ndcg - peer_ndcg:+.4f}")


if __name__ == "__main__":
    main()

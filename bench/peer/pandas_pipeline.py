#!/usr/bin/python3
"""The peer of `recforge data ingest` + `data prepare`: the same pipeline in pandas.

read CSV -> dedup (keep the latest row of each (user, item)) -> iterative k-core ->
per-user temporal split (last max(1, floor(0.2 n_u)) rows by (time, item) to test) ->
write train/test as binary numpy columns plus the id maps.

Configured as a careful pandas user would: C parser, categorical ids (integer codes
instead of Python strings), vectorised groupby, no Python loops over rows.
Prints one JSON line with the timings and the row counts.
"""
import json
import os
import sys
import time

import numpy as np
import pandas as pd


def main():
    src, out, k = sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 5
    os.makedirs(out, exist_ok=True)
    t0 = time.perf_counter()
    df = pd.read_csv(src, dtype={"user_id": "category", "item_id": "category",
                                 "rating": np.float32, "timestamp": np.int64})
    t_read = time.perf_counter()
    # dedup: the latest row of each pair wins (stable sort keeps file order for ties)
    df = df.sort_values("timestamp", kind="stable")
    df = df.drop_duplicates(["user_id", "item_id"], keep="last")
    t_dedup = time.perf_counter()
    # k-core to a fixed point
    while True:
        user_counts = df["user_id"].map(df["user_id"].value_counts()).to_numpy()
        item_counts = df["item_id"].map(df["item_id"].value_counts()).to_numpy()
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            break
        df = df[keep]
    t_kcore = time.perf_counter()
    # per-user split by (time, item)
    df = df.sort_values(["user_id", "timestamp", "item_id"], kind="stable")
    size = df.groupby("user_id", observed=True)["user_id"].transform("size").to_numpy()
    rank = df.groupby("user_id", observed=True).cumcount().to_numpy()
    n_test = np.maximum(1, np.floor(size * 0.2 + 1e-9)).astype(np.int64)
    is_test = rank >= size - n_test
    t_split = time.perf_counter()
    users = df["user_id"].cat.codes.to_numpy()
    items = df["item_id"].cat.codes.to_numpy()
    for name, mask in (("train", ~is_test), ("test", is_test)):
        np.save(os.path.join(out, f"{name}_users.npy"), users[mask].astype(np.uint32))
        np.save(os.path.join(out, f"{name}_items.npy"), items[mask].astype(np.uint32))
        np.save(os.path.join(out, f"{name}_ratings.npy"), df["rating"].to_numpy()[mask])
        np.save(os.path.join(out, f"{name}_times.npy"), df["timestamp"].to_numpy()[mask])
    pd.Series(df["user_id"].cat.categories).to_csv(os.path.join(out, "user_ids.txt"), index=False, header=False)
    pd.Series(df["item_id"].cat.categories).to_csv(os.path.join(out, "item_ids.txt"), index=False, header=False)
    t_write = time.perf_counter()
    print(json.dumps({
        "read": t_read - t0, "dedup": t_dedup - t_read, "kcore": t_kcore - t_dedup,
        "split": t_split - t_kcore, "write": t_write - t_split, "total": t_write - t0,
        "train_rows": int((~is_test).sum()), "test_rows": int(is_test.sum()),
    }))


if __name__ == "__main__":
    main()

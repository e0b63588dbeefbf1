#!/usr/bin/python3
"""The peer of `recforge data ingest` on Amazon-2023-shaped JSON Lines: pandas reads the
file in chunks (bounded memory, as a careful user would on a multi-GB file) and keeps
the interaction columns. Prints one JSON line with the timing and the row count."""
import json
import sys
import time

import pandas as pd


def main():
    src = sys.argv[1]
    t0 = time.perf_counter()
    parts = []
    for chunk in pd.read_json(src, lines=True, chunksize=200_000, dtype=False, convert_dates=False):
        item = chunk["parent_asin"].fillna(chunk["asin"])
        parts.append(pd.DataFrame({"user_id": chunk["user_id"].astype("category"),
                                   "item_id": item.astype("category"),
                                   "rating": chunk["rating"].astype("float32"),
                                   "timestamp": (chunk["timestamp"] // 1000).astype("int64")}))
    df = pd.concat(parts, ignore_index=True)
    t1 = time.perf_counter()
    print(json.dumps({"total": t1 - t0, "rows": len(df)}))


if __name__ == "__main__":
    main()

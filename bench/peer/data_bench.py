#!/usr/bin/python3
"""Data-pipeline benchmark: recforge vs pandas on the same files, in one run.

 (a) a 20M-row synthetic CSV (`recforge data synth --format csv`): read + dedup +
     5-core + per-user 80/20 temporal split, end to end (recforge: `data ingest` then
     `data prepare`; pandas: bench/peer/pandas_pipeline.py).
 (b) a >= 1 GB JSONL file of Amazon-2023 shape built by the generator: parsing speed
     (recforge `data ingest` vs pandas read_json in chunks).
 (c) loading the prepared 20M dataset back (Google Benchmark bench/micro, if built).

Each measurement is the minimum of --repeats runs (the machines are noisy). Peak memory
comes from /usr/bin/time. Usage:
  /usr/bin/python3 bench/peer/data_bench.py [--work /tmp/recforge-bench] [--repeats 3]
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "build", "release", "recforge")
PY = "/usr/bin/python3"


def peer_env():
    # numpy/pandas peers: drop the OpenBLAS overrides that slow a current numpy (see env).
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    return env


def timed(cmd, env=None):
    """Runs cmd under /usr/bin/time; returns (seconds, peak_rss_bytes, stdout)."""
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{proc.stderr}")
    peak_kb = int(proc.stderr.strip().splitlines()[-1])
    return seconds, peak_kb * 1024, proc.stdout


def dir_bytes(path):
    total = 0
    for base, _, files in os.walk(path):
        for name in files:
            if name.endswith((".u32", ".f32", ".i64")):
                total += os.path.getsize(os.path.join(base, name))
    return total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default="/tmp/recforge-bench")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--peer-repeats", type=int, default=2)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--jsonl-reviews", type=int, default=2_000_000)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    os.makedirs(a.work, exist_ok=True)
    csv = os.path.join(a.work, f"synth{a.rows // 1_000_000}m.csv")
    jsonl = os.path.join(a.work, "reviews_amazon2023.jsonl")
    threads = ["--threads", str(a.threads), "-q"]

    if not os.path.exists(csv):
        subprocess.run([CLI, "data", "synth", "--format", "csv", "-n", str(a.rows), "--users", "200000",
                        "--items", "50000", "--seed", "20240601", "-o", csv] + threads, check=True)
    if not os.path.exists(jsonl):
        subprocess.run([CLI, "data", "synth", "--format", "amazon-2023-jsonl", "-n", str(a.jsonl_reviews),
                        "--users", "400000", "--items", "60000", "--seed", "7", "-o", jsonl] + threads, check=True)
    csv_mb = os.path.getsize(csv) / 1e6
    jsonl_mb = os.path.getsize(jsonl) / 1e6
    print(f"inputs: {csv} ({csv_mb:.0f} MB), {jsonl} ({jsonl_mb:.0f} MB); threads={a.threads}")

    # (a) end to end
    ds, prep = os.path.join(a.work, "ds"), os.path.join(a.work, "prep")
    best = None
    for _ in range(a.repeats):
        shutil.rmtree(ds, ignore_errors=True)
        shutil.rmtree(prep, ignore_errors=True)
        t_ingest, m_ingest, _ = timed([CLI, "data", "ingest", csv, "-o", ds] + threads)
        t_prep, m_prep, out = timed([CLI, "data", "prepare", ds, "-o", prep, "--min-user", "5", "--min-item", "5",
                                     "--split", "ratio", "--test-ratio", "0.2", "--json"] + threads)
        run = (t_ingest + t_prep, t_ingest, t_prep, m_ingest, m_prep, json.loads(out))
        if best is None or run[0] < best[0]:
            best = run
    total, t_ingest, t_prep, m_ingest, m_prep, report = best
    binary = dir_bytes(ds)
    print(f"recforge: ingest {t_ingest:.2f}s (peak {m_ingest / 1e6:.0f} MB) + prepare {t_prep:.2f}s "
          f"(peak {m_prep / 1e6:.0f} MB) = {total:.2f}s; train {report['train_rows']} test {report['test_rows']}")
    print(f"binary dataset {binary / 1e6:.0f} MB; peak memory / binary size: ingest {m_ingest / binary:.2f}x, "
          f"prepare {m_prep / binary:.2f}x")
    # The same work in one step (`data prepare` reads the raw CSV itself, as the pandas
    # script does): no intermediate dataset is written and read back.
    one_step = None
    prep1 = os.path.join(a.work, "prep1")
    for _ in range(a.repeats):
        shutil.rmtree(prep1, ignore_errors=True)
        t_one, m_one, out = timed([CLI, "data", "prepare", csv, "-o", prep1, "--min-user", "5", "--min-item", "5",
                                   "--split", "ratio", "--test-ratio", "0.2", "--json"] + threads)
        if one_step is None or t_one < one_step[0]:
            one_step = (t_one, m_one, json.loads(out))
    t_one, m_one, report_one = one_step
    print(f"recforge one step (prepare from the raw CSV): {t_one:.2f}s (peak {m_one / 1e6:.0f} MB = "
          f"{m_one / binary:.2f}x the binary dataset); train {report_one['train_rows']} test {report_one['test_rows']}")

    peer_best = None
    peer_dir = os.path.join(a.work, "pandas_out")
    for _ in range(a.peer_repeats):
        t_peer, m_peer, out = timed([PY, os.path.join(ROOT, "bench/peer/pandas_pipeline.py"), csv, peer_dir, "5"],
                                    env=peer_env())
        if peer_best is None or t_peer < peer_best[0]:
            peer_best = (t_peer, m_peer, json.loads(out))
    t_peer, m_peer, peer = peer_best
    print(f"pandas:   {t_peer:.2f}s (peak {m_peer / 1e6:.0f} MB) {json.dumps(peer)}")
    if peer["train_rows"] != report["train_rows"] or peer["test_rows"] != report["test_rows"]:
        print(f"WARNING: row counts differ: pandas {peer['train_rows']}/{peer['test_rows']}")
    print(f"RATIO end-to-end (pandas / recforge ingest + prepare, two steps): {t_peer / total:.1f}x")
    print(f"RATIO end-to-end (pandas / recforge prepare from the raw CSV, one step): {t_peer / t_one:.1f}x")

    # (b) JSONL parsing
    jds = os.path.join(a.work, "jds")
    best_json = None
    for _ in range(a.repeats):
        shutil.rmtree(jds, ignore_errors=True)
        t_json, m_json, out = timed([CLI, "data", "ingest", jsonl, "-o", jds, "--json"] + threads)
        parse = json.loads(out)["seconds"]
        if best_json is None or t_json < best_json[0]:
            best_json = (t_json, m_json, parse)
    t_json, m_json, _ = best_json
    per_core = jsonl_mb / t_json / a.threads
    print(f"recforge JSONL: {t_json:.2f}s = {jsonl_mb / t_json:.0f} MB/s ({per_core:.0f} MB/s per core), "
          f"peak {m_json / 1e6:.0f} MB")
    t_pj, m_pj, out = timed([PY, os.path.join(ROOT, "bench/peer/pandas_jsonl.py"), jsonl], env=peer_env())
    print(f"pandas JSONL:   {t_pj:.2f}s (peak {m_pj / 1e6:.0f} MB) {out.strip()}")
    print(f"RATIO JSONL (pandas / recforge): {t_pj / t_json:.1f}x")

    # (c) loading the prepared dataset back
    bench_bin = os.path.join(ROOT, "build", "release", "bench", "recforge_bench_data")
    if os.path.exists(bench_bin):
        env = dict(os.environ, RECFORGE_BENCH_PREPARED=prep)
        proc = subprocess.run([bench_bin, "--benchmark_filter=LoadPrepared", "--benchmark_repetitions=3",
                               "--benchmark_report_aggregates_only=true"], capture_output=True, text=True, env=env)
        print(proc.stdout.strip())
    else:
        t0 = time.perf_counter()
        subprocess.run([CLI, "data", "describe", prep, "--json", "-q"], capture_output=True, check=True)
        print(f"load + describe of the prepared dataset: {time.perf_counter() - t0:.2f}s "
              f"(build the bench preset for the pure load figure)")


if __name__ == "__main__":
    main()

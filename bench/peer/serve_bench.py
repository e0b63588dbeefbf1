#!/usr/bin/python3
"""Serving benchmark (issue 5): `recforge serve` vs a FastAPI + uvicorn + numpy peer.

For each model size it trains an implicit-ALS model, starts `recforge serve --threads 2`
and the peer (bench/peer/fastapi_server.py: 2 uvicorn workers, one BLAS thread each)
on loopback, checks that both answer the same top-10, warms up, then loads each server
in turn with wrk (bench/peer/recommend.lua: POST /recommend, a random known user per
request, top_k 10, exclude_seen) for a fixed time, and prints requests/s, p50/p99 and
errors (non-2xx + socket errors) against the targets of issue 5:

  (a) ml100k   ml-100k u.data, ratio split, `ials:factors=64`     >= 3x peer req/s, p99 <= 5 ms
  (b) synth50k 50k items (gen_synth.py 20M: 200k users x 50k)     >= 10x peer req/s, p99 <= 5 ms
  (c) ann1m    1M items (`recforge data synth`), served with ANN  p99 <= 10 ms (recforge only)
  (d) reload   POST /admin/reload every 2 s during a wrk run on (a), alternating two
               model files                                         0 failed requests
  and 0 errors in every run (the runs last --duration seconds, 60 by default).

wrk shares the 2 cores with the server it loads (the issue's setting). Everything is
written under --work (default /tmp/recforge-serve-bench); datasets and models are kept
there and reused (--fresh rebuilds them). --quick is a smoke run: small synthetic sets
(50k items but few interactions; 250k items for the ANN case), 3-second runs.

  /usr/bin/python3 bench/peer/serve_bench.py [--quick] [--duration 60] [--connections 32]
      [--only ml100k,synth50k,ann1m,reload] [--work DIR] [--fresh] [--cli BIN] [--export BIN]

Needs a release build with the bench targets (RECFORGE_BUILD_BENCH=ON:
build/release/bench/recforge_export_factors), Debian wrk, python3-fastapi,
python3-uvicorn and numpy. The peer runs with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset
(they slow a current numpy; see the env notes) and OPENBLAS_NUM_THREADS=1.
"""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CLI = os.path.join(ROOT, "build", "release", "recforge")
EXPORT = os.path.join(ROOT, "build", "release", "bench", "recforge_export_factors")
PEER = os.path.join(ROOT, "bench", "peer", "fastapi_server.py")
LUA = os.path.join(ROOT, "bench", "peer", "recommend.lua")
GEN_SYNTH = os.path.join(os.path.dirname(ROOT), "shared", "bench", "gen_synth.py")
ML100K = os.path.join(os.environ.get("RECFORGE_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data")),
                      "ml-100k", "u.data")
PY = "/usr/bin/python3"
WRK = "/usr/bin/wrk"
TOKEN = "serve-bench-token"

# Targets of issue 5.
TARGET_RATIO = {"ml100k": 3.0, "synth50k": 10.0}
TARGET_P99_MS = {"ml100k": 5.0, "synth50k": 5.0, "ann1m": 10.0}


def set_binaries(cli, export):
    global CLI, EXPORT
    CLI, EXPORT = os.path.abspath(cli), os.path.abspath(export)


class CaseFailed(Exception):
    """A server of one case did not start: reported, and the next case runs."""


def log(message):
    print(message, flush=True)


def run(cmd, **kwargs):
    log("$ " + " ".join(str(c) for c in cmd))
    subprocess.run([str(c) for c in cmd], check=True, **kwargs)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peer_env(blas_threads):
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = str(blas_threads)
    env["OMP_NUM_THREADS"] = str(blas_threads)
    env["PYTHONDONTWRITEBYTECODE"] = "1"  # the workers import bench/peer/fastapi_server.py: no __pycache__ there
    return env


def http(method, url, body=None, headers=None, timeout=30):
    """Returns (status, parsed JSON or text); status 0 on a connection error."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
    if data is not None:
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            status = resp.status
    except urllib.error.HTTPError as err:
        raw, status = err.read(), err.code
    except (urllib.error.URLError, ConnectionError, socket.timeout) as err:
        return 0, str(err)
    try:
        return status, json.loads(raw)
    except ValueError:
        return status, raw.decode(errors="replace")


# ---------------------------------------------------------------- data and models

def prepared_ok(path):
    return os.path.exists(os.path.join(path, "meta.json")) and os.path.isdir(os.path.join(path, "train"))


def build_case(name, a):
    """Prepares the dataset and trains the model(s) of one case; returns a dict of paths."""
    # Quick and full runs build different sets: keep them apart so neither reuses the other's.
    work = os.path.join(a.work, "quick" if a.quick else "full",
                        name if name != "ann1m" else f"ann{a.ann_items}")
    os.makedirs(work, exist_ok=True)
    threads = ["--threads", str(a.build_threads), "-q"]
    prep = os.path.join(work, "prepared")
    model = os.path.join(work, "model.rfm")
    spec = "ials:factors=64"
    if a.fresh:
        shutil.rmtree(prep, ignore_errors=True)
        for f in (model, model + ".b"):
            if os.path.exists(f):
                os.remove(f)
    if name == "ml100k":
        if not prepared_ok(prep):
            if not os.path.exists(ML100K):
                sys.exit(f"{ML100K} not found (set RECFORGE_DATA_DIR)")
            run([CLI, "data", "prepare", ML100K, "-o", prep, "--split", "ratio", "--test-ratio", "0.2",
                 "--dedup", "first", "--no-track"] + threads)
    elif name == "synth50k":
        if not prepared_ok(prep):
            if a.quick:
                raw = os.path.join(work, "raw")
                # Uniform popularity so that (almost) every item has interactions: `data
                # prepare` keeps only the items that occur (≈ 51k of these 52.5k).
                run([CLI, "data", "synth", "-o", raw, "-n", "400000", "--users", "20000", "--items", "52500",
                     "--zipf", "0", "--seed", "7"] + threads)
                run([CLI, "data", "prepare", raw, "-o", prep, "--split", "ratio", "--test-ratio", "0.2",
                     "--no-track"] + threads)
            else:
                # The 20M set of the model-zoo benchmark (docs/benchmarks.md, issue 3).
                tsv = os.path.join(work, "synth20m.tsv")
                if not os.path.exists(tsv):
                    run([PY, GEN_SYNTH, tsv])
                run([CLI, "data", "prepare", tsv, "-o", prep, "--columns", "user=0,item=1,rating=2",
                     "--has-header", "no", "--delimiter", "tab", "--no-metadata", "--split", "ratio",
                     "--test-ratio", "0.2", "--no-track"] + threads)
        if a.quick:
            spec = "ials:factors=64,iters=2"
    elif name == "ann1m":
        if not prepared_ok(prep):
            raw = os.path.join(work, "raw")
            # `data prepare` keeps only the items that occur: with uniform popularity and
            # ≈ 7 interactions per item (quick: 4) ≈ 98% (93%) of the generated items do,
            # so 5% more are generated (1.05M -> ≈ 1.03M items in the model).
            n = a.ann_items * (4 if a.quick else 7.6)
            run([CLI, "data", "synth", "-o", raw, "-n", int(n), "--users", int(n // 30),
                 "--items", int(a.ann_items * 1.05), "--zipf", "0", "--seed", "11"] + threads)
            run([CLI, "data", "prepare", raw, "-o", prep, "--split", "ratio", "--test-ratio", "0.1",
                 "--no-track"] + threads)
            shutil.rmtree(raw, ignore_errors=True)
        spec = "ials:factors=64,iters=" + ("2" if a.quick else "3")
    else:
        raise ValueError(name)
    if not os.path.exists(model):
        run([CLI, "train", "-d", prep, "--model", spec, "-o", model, "--seed", "42", "--no-track"] + threads)
    case = {"name": name, "work": work, "prepared": prep, "model": model}
    if name == "ml100k" and "reload" in a.only:
        # A second model (another seed) so that every reload swaps in different factors.
        model_b = os.path.join(work, "model_b.rfm")
        if not os.path.exists(model_b):
            run([CLI, "train", "-d", prep, "--model", spec, "-o", model_b, "--seed", "43", "--no-track"] + threads)
        case["model_b"] = model_b
    if name != "ann1m":
        factors = os.path.join(work, "factors")
        if not os.path.exists(os.path.join(factors, "meta.json")) or \
                os.path.getmtime(os.path.join(factors, "meta.json")) < os.path.getmtime(model):
            run([EXPORT, model, prep, factors], stdout=subprocess.DEVNULL)
        case["factors"] = factors
        case["users"] = os.path.join(factors, "known_users.txt")
    else:
        # Users with training items, for wrk (the export tool is not needed here).
        users = os.path.join(work, "known_users.txt")
        if not os.path.exists(users):
            write_known_users(prep, users)
        case["users"] = users
    return case


def write_known_users(prep, out):
    import numpy as np
    with open(os.path.join(prep, "train", "meta.json")) as f:
        rows = json.load(f).get("rows")
    users = np.fromfile(os.path.join(prep, "train", "users.u32"), dtype="<u4", count=rows if rows else -1)
    with open(os.path.join(prep, "user_ids.txt")) as f:
        ids = f.read().split("\n")
    with open(out, "w") as f:
        for u in np.unique(users).tolist():
            f.write(ids[u] + "\n")


# ---------------------------------------------------------------- servers

class Server:
    """A server process in its own session (so its workers stop with it)."""

    def __init__(self, label, cmd, cwd, env, ready_path, log_path):
        self.label, self.cmd, self.ready_path = label, cmd, ready_path
        self.port = None
        self.log_path = log_path
        self.log = open(log_path, "w")
        log(f"$ {' '.join(cmd)}  (log: {log_path})")
        self.proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def wait_ready(self, timeout):
        start = time.time()
        while time.time() - start < timeout:
            if self.proc.poll() is not None:
                self.log.flush()
                tail = open(self.log_path).read()[-2000:]
                raise CaseFailed(f"{self.label} exited with {self.proc.returncode} before it was ready:\n{tail}")
            status, _ = http("GET", self.url + self.ready_path, timeout=5)
            if status == 200:
                log(f"{self.label} ready in {time.time() - start:.1f}s at {self.url}")
                return time.time() - start
            time.sleep(0.25)
        raise CaseFailed(f"{self.label} not ready after {timeout}s (log: {self.log_path})")

    def rss_mb(self):
        """Resident memory of the process and its children (MB)."""
        total = 0
        pids = [self.proc.pid]
        try:
            out = subprocess.run(["ps", "-o", "pid=", "-g", str(self.proc.pid)], capture_output=True, text=True)
            pids = [int(p) for p in out.stdout.split()] or pids
        except OSError:
            pass
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for line in f:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1])
            except OSError:
                pass
        return total / 1024.0

    def stop(self):
        if self.log.closed:
            return self.proc.returncode
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
            except ProcessLookupError:
                pass
        self.log.close()
        return self.proc.returncode


def start_recforge(case, a, model=None):
    port = free_port()
    cmd = [CLI, "serve", "--model", model or case["model"], "--dataset", case["prepared"],
           "--host", "127.0.0.1", "--port", str(port), "--threads", str(a.threads),
           "--admin-token", TOKEN] + (["--no-access-log"] if not a.access_log else []) + a.serve_arg
    run_dir = os.path.join(case["work"], "serve-run")
    os.makedirs(run_dir, exist_ok=True)
    env = dict(os.environ, RECFORGE_TRACKING_URI=os.path.join(a.work, "mlruns.db"))
    server = Server("recforge", cmd, run_dir, env, "/ready", os.path.join(case["work"], "recforge-serve.log"))
    server.port = port
    return server


def start_peer(case, a):
    port = free_port()
    cmd = [PY, PEER, case["factors"], "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(a.peer_workers)]
    server = Server("fastapi", cmd, case["work"], peer_env(a.peer_blas_threads), "/health",
                    os.path.join(case["work"], "fastapi-peer.log"))
    server.port = port
    return server


def top_items(server, user, k=10):
    status, body = http("POST", server.url + "/recommend", {"user_id": user, "top_k": k, "exclude_seen": True})
    if status != 200 or not isinstance(body, dict):
        return status, None, None
    return status, [item["item_id"] for item in body.get("items", [])], body.get("source")


def compare_answers(servers, users_file, sample=20):
    """Top-10 lists of the servers for a few users: both must answer 200 from the model
    and should agree (ties and float rounding may swap neighbours)."""
    with open(users_file) as f:
        users = [line.strip() for line in f if line.strip()]
    step = max(1, len(users) // sample)
    picked = users[::step][:sample]
    overlap, equal, problems = 0.0, 0, []
    for user in picked:
        lists = []
        for server in servers:
            status, items, source = top_items(server, user)
            if items is None or source != "model" or len(items) != 10:
                problems.append(f"{server.label} user {user}: status {status}, source {source}, "
                                f"{0 if items is None else len(items)} items")
            lists.append(items or [])
        if len(lists) == 2:
            overlap += len(set(lists[0]) & set(lists[1])) / 10.0
            equal += lists[0] == lists[1]
    return {"users": len(picked), "overlap_at_10": overlap / max(1, len(picked)),
            "identical_lists": equal, "problems": problems}


# ---------------------------------------------------------------- wrk

def wrk(url, users_file, seconds, a, label):
    cmd = [WRK, f"-t{a.wrk_threads}", f"-c{a.connections}", f"-d{seconds}s", "--latency", "--timeout", "5s",
           "-s", LUA, url, "--", users_file, str(a.top_k), "1"]
    log(f"$ {' '.join(cmd)}   [{label}, load average {os.getloadavg()[0]:.2f}]")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        sys.exit(f"wrk failed ({proc.returncode}): {proc.stderr}\n{proc.stdout}")
    match = re.search(r"^WRK_JSON (\{.*\})$", proc.stdout, re.M)
    if not match:
        sys.exit(f"no WRK_JSON line in the wrk output:\n{proc.stdout}")
    result = json.loads(match.group(1))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    # "Non-2xx or 3xx responses: N" is the same counter as errors.status (>= 400);
    # the text is parsed as well in case a 1xx/3xx ever shows up.
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", proc.stdout)
    result["non2xx"] = max(int(non2xx.group(1)) if non2xx else 0, result["status"])
    result["socket_errors"] = result["connect"] + result["read"] + result["write"] + result["timeout"]
    result["errors"] = result["non2xx"] + result["socket_errors"]
    result["load_avg"] = os.getloadavg()[0]
    log(f"  {label}: {result['rps']:.0f} req/s, p50 {result['p50_us'] / 1000:.2f} ms, "
        f"p99 {result['p99_us'] / 1000:.2f} ms, errors {result['errors']} "
        f"(non-2xx {result['non2xx']}, socket {result['socket_errors']}), {result['requests']} requests")
    return result


def measure(server, case, a):
    """Warm-up, then --repeats timed runs: the best req/s run, with the errors of all runs."""
    wrk(server.url, case["users"], a.warmup, a, f"{case['name']} {server.label} warm-up")
    runs = [wrk(server.url, case["users"], a.duration, a, f"{case['name']} {server.label} run {r + 1}")
            for r in range(a.repeats)]
    best = dict(max(runs, key=lambda r: r["rps"]))
    best["total_errors"] = sum(r["errors"] for r in runs)
    best["rss_mb"] = server.rss_mb()
    return best


def reload_under_load(case, a):
    """wrk on recforge while a thread POSTs /admin/reload every 2 s, alternating between
    two model files; every request must succeed and every reload must answer 2xx."""
    server = start_recforge(case, a)
    reloads = []
    try:
        server.wait_ready(a.ready_timeout)
        wrk(server.url, case["users"], a.warmup, a, "reload warm-up")
        stop = threading.Event()
        models = [case["model_b"], case["model"]]

        def reloader():
            k = 0
            while not stop.wait(2.0):
                t0 = time.perf_counter()
                status, body = http("POST", server.url + "/admin/reload", {"model": models[k % 2]},
                                    headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
                reloads.append({"status": status, "seconds": time.perf_counter() - t0,
                                "body": body if status // 100 != 2 else None})
                k += 1

        thread = threading.Thread(target=reloader, daemon=True)
        thread.start()
        result = wrk(server.url, case["users"], a.reload_duration, a, "reload under load")
        stop.set()
        thread.join(timeout=70)
    finally:
        server.stop()
    result["reloads"] = len(reloads)
    result["reloads_ok"] = sum(1 for r in reloads if r["status"] // 100 == 2)
    result["reload_seconds_max"] = max((r["seconds"] for r in reloads), default=0.0)
    failed = [r for r in reloads if r["status"] // 100 != 2]
    if failed:
        log(f"  reload failures: {failed[:3]}")
    log(f"  reloads: {result['reloads_ok']}/{result['reloads']} answered 2xx, slowest "
        f"{result['reload_seconds_max']:.2f}s; failed requests during the run: {result['errors']}")
    return result


# ---------------------------------------------------------------- report

def fmt_ms(us):
    return f"{us / 1000:.2f}"


def verdict(ok):
    return "met" if ok else "NOT MET"


def report(results, a):
    log("")
    log(f"Serving benchmark ({'QUICK smoke run, not a measurement' if a.quick else 'full'}): "
        f"wrk -t{a.wrk_threads} -c{a.connections} -d{a.duration}s, top_k {a.top_k}, recforge --threads "
        f"{a.threads}, peer {a.peer_workers} uvicorn workers x OPENBLAS_NUM_THREADS={a.peer_blas_threads}")
    log("")
    log("| model | server | items | req/s | p50 ms | p99 ms | errors | RSS MB | load |")
    log("|---|---|---|---|---|---|---|---|---|")
    for name in ("ml100k", "synth50k", "ann1m"):
        for label in ("recforge", "fastapi"):
            r = results.get(name, {}).get(label)
            if r:
                log(f"| {name} | {label} | {results[name]['items']} | {r['rps']:.0f} | {fmt_ms(r['p50_us'])} | "
                    f"{fmt_ms(r['p99_us'])} | {r['total_errors']} | {r.get('rss_mb', 0):.0f} | "
                    f"{r['load_avg']:.1f} |")
    log("")
    log("| check | value | target | verdict |")
    log("|---|---|---|---|")
    for name, target in TARGET_RATIO.items():
        r = results.get(name, {})
        if "recforge" in r and "fastapi" in r:
            ratio = r["recforge"]["rps"] / r["fastapi"]["rps"]
            log(f"| {name} req/s recforge / peer | {ratio:.1f}x | >= {target:.0f}x | {verdict(ratio >= target)} |")
    for name, target in TARGET_P99_MS.items():
        r = results.get(name, {}).get("recforge")
        if r:
            p99 = r["p99_us"] / 1000
            extra = "" if name != "ann1m" or results[name]["items"] >= 1_000_000 else \
                f" ({results[name]['items']} items, not 1M)"
            if name == "ann1m" and results[name].get("ann") is False:
                extra += " (ANN was NOT enabled)"
            log(f"| {name} p99 top-{a.top_k}{extra} | {p99:.2f} ms | <= {target:.0f} ms | {verdict(p99 <= target)} |")
    for name in ("ml100k", "synth50k", "ann1m"):
        r = results.get(name, {}).get("recforge")
        if r:
            seconds = a.duration * a.repeats
            ok = r["total_errors"] == 0
            text = verdict(ok) if seconds >= 60 else ("0 errors, but the runs were < 60 s" if ok else "NOT MET")
            log(f"| {name} errors (non-2xx + socket) over {seconds} s | {r['total_errors']} | 0 over 60 s | {text} |")
    if "reload" in results:
        r = results["reload"]
        log(f"| failed requests across {r['reloads']} reloads ({a.reload_duration} s) | {r['errors']} "
            f"(reloads 2xx: {r['reloads_ok']}/{r['reloads']}) | 0 | "
            f"{verdict(r['errors'] == 0 and r['reloads_ok'] == r['reloads'] and r['reloads'] > 0)} |")
    for name in ("ml100k", "synth50k"):
        c = results.get(name, {}).get("agreement")
        if c:
            log(f"{name}: top-10 agreement recforge vs peer over {c['users']} users: overlap@10 "
                f"{c['overlap_at_10']:.3f}, identical lists {c['identical_lists']}/{c['users']}")
    for name in ("ml100k", "synth50k", "ann1m"):
        if "failed" in results.get(name, {}):
            log(f"{name}: FAILED: {results[name]['failed'].splitlines()[0]}")
    if "reload_failed" in results:
        log(f"reload: FAILED: {results['reload_failed'].splitlines()[0]}")
    path = os.path.join(a.work, "quick" if a.quick else "full", "results.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
    log(f"raw results: {path}")


def uvicorn_impl():
    have = {}
    for module in ("uvloop", "httptools"):
        have[module] = subprocess.run([PY, "-c", f"import {module}"], capture_output=True).returncode == 0
    return have


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="/tmp/recforge-serve-bench")
    ap.add_argument("--quick", action="store_true", help="smoke mode: small models, 3-second runs")
    ap.add_argument("--only", default="ml100k,synth50k,ann1m,reload")
    ap.add_argument("--duration", type=int, default=None, help="seconds per wrk run (default 60; quick 3)")
    ap.add_argument("--warmup", type=int, default=None, help="seconds of warm-up per server (default 10; quick 1)")
    ap.add_argument("--reload-duration", type=int, default=None, help="default 60; quick 6")
    ap.add_argument("--repeats", type=int, default=1, help="wrk runs per server; the best req/s is kept")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2, help="recforge serve --threads")
    ap.add_argument("--peer-workers", type=int, default=2, help="uvicorn workers (one per core)")
    ap.add_argument("--peer-blas-threads", type=int, default=1, help="OPENBLAS_NUM_THREADS of each peer worker")
    ap.add_argument("--build-threads", type=int, default=None, help="threads for prepare/train (default: cores)")
    ap.add_argument("--ann-items", type=int, default=None, help="items of the ANN case (default 1M; quick 250k)")
    ap.add_argument("--ready-timeout", type=int, default=None,
                    help="seconds to wait for /ready, incl. the ANN index build (default 1800; quick 300)")
    ap.add_argument("--access-log", action="store_true",
                    help="keep recforge's per-request log (default --no-access-log, like the peer's uvicorn)")
    ap.add_argument("--serve-arg", action="append", default=[], help="extra argument for recforge serve")
    ap.add_argument("--fresh", action="store_true", help="rebuild datasets and models")
    ap.add_argument("--cli", default=CLI, help="the recforge binary (default build/release/recforge)")
    ap.add_argument("--export", default=EXPORT, help="recforge_export_factors (default build/release/bench/)")
    a = ap.parse_args()
    set_binaries(a.cli, a.export)
    # SIGTERM (timeout, kill) unwinds like Ctrl-C, so the servers started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    a.only = set(a.only.split(","))
    a.duration = a.duration or (3 if a.quick else 60)
    a.warmup = a.warmup or (1 if a.quick else 10)
    a.reload_duration = a.reload_duration or (6 if a.quick else 60)
    a.ann_items = a.ann_items or (250_000 if a.quick else 1_000_000)
    a.ready_timeout = a.ready_timeout or (300 if a.quick else 1800)
    a.build_threads = a.build_threads or (1 if a.quick else os.cpu_count())
    a.work = os.path.abspath(a.work)
    if a.work == ROOT or a.work.startswith(ROOT + os.sep):
        sys.exit("--work must be outside the repository")
    os.makedirs(a.work, exist_ok=True)
    for path in (CLI, EXPORT, WRK):
        if not os.path.exists(path):
            sys.exit(f"{path} not found (build with RECFORGE_BUILD_BENCH=ON; apt-get install wrk)")
    help_out = subprocess.run([CLI, "serve", "--help"], capture_output=True, text=True)
    if help_out.returncode != 0:
        sys.exit("`recforge serve --help` failed: this build has no serving daemon")
    impl = uvicorn_impl()
    log(f"peer: uvicorn with uvloop={'yes' if impl['uvloop'] else 'no (asyncio)'}, "
        f"httptools={'yes' if impl['httptools'] else 'no (h11)'}")
    if not all(impl.values()):
        log("  note: uvicorn[standard] (Debian python3-uvloop python3-httptools) makes the peer faster; "
            "the issue's peer figures were taken with a tuned deployment")
    log(f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.2f}, work dir {a.work}")

    results = {}
    for name in [c for c in ("ml100k", "synth50k", "ann1m") if c in a.only]:
        case = build_case(name, a)
        items = sum(1 for _ in open(os.path.join(case["prepared"], "item_ids.txt")))
        results[name] = {"items": items, "model": case["model"]}
        log(f"\n== {name}: {items} items, model {case['model']}")
        servers = []
        try:
            rf = start_recforge(case, a)
            servers.append(rf)
            results[name]["recforge_ready_s"] = rf.wait_ready(a.ready_timeout)
            status, info = http("GET", rf.url + "/info")
            if status == 200 and isinstance(info, dict):
                results[name]["ann"] = info.get("ann")
                log(f"  recforge /info: {info.get('items')} items, {info.get('users')} users, ann {info.get('ann')}")
            peer = None
            if name != "ann1m":
                peer = start_peer(case, a)
                servers.append(peer)
                peer.wait_ready(300)
            check = compare_answers(servers, case["users"])
            results[name]["agreement"] = check
            if check["problems"]:
                log("  answers: " + "; ".join(check["problems"][:5]))
            elif peer is not None:
                log(f"  top-10 agreement over {check['users']} users: overlap@10 {check['overlap_at_10']:.3f}, "
                    f"identical {check['identical_lists']}/{check['users']}")
            # One server under load at a time; the other one idles.
            results[name]["recforge"] = measure(rf, case, a)
            if peer is not None:
                results[name]["fastapi"] = measure(peer, case, a)
        except CaseFailed as err:
            results[name]["failed"] = str(err)
            log(f"  FAILED: {err}")
        finally:
            for server in servers:
                code = server.stop()
                if server.label == "recforge" and code not in (0, None):
                    log(f"  note: recforge serve exited with {code} on SIGTERM (expected 0)")
    if "reload" in a.only:
        log("\n== reload under load (ml100k)")
        try:
            results["reload"] = reload_under_load(build_case("ml100k", a), a)
        except CaseFailed as err:
            results["reload_failed"] = str(err)
            log(f"  FAILED: {err}")
    report(results, a)


if __name__ == "__main__":
    main()

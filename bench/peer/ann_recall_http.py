#!/usr/bin/python3
"""Recall@10 of `recforge serve`'s ANN path against its exact path on the served 1M-item
model of serve_bench.py's ann1m case (run that first): 200 known users, top-10 from a
`--no-ann` server vs servers with each (candidates, ef) setting.

  /usr/bin/python3 bench/peer/ann_recall_http.py [--settings 216:128,128:128,64:64]
      [--serve-arg=--ann-ef-construction --serve-arg=128]

RECFORGE_ANN_WORK names the case's directory (model.rfm, prepared/, known_users.txt).
--serve-arg passes options to the ANN servers (build options must match the cached
graph's, or the server rebuilds it).
"""
import argparse
import json
import os
import random
import subprocess
import sys
import time
import urllib.request

W = os.environ.get("RECFORGE_ANN_WORK", "/tmp/recforge-serve-bench/full/ann1000000")  # serve_bench.py --work DIR
CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "build", "release", "recforge")
def start(port, extra):
    p = subprocess.Popen([CLI,"serve","--model",W+"/model.rfm","--dataset",W+"/prepared","--port",str(port),"--no-access-log","--no-events"]+extra, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(600):
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1).status == 200: return p
        except Exception: time.sleep(0.5)
    sys.exit("not ready")
def top(port, u):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/recommend", data=json.dumps({"user_id":u,"top_k":10}).encode(), headers={"Content-Type":"application/json"})
    return [i["item_id"] for i in json.load(urllib.request.urlopen(req))["items"]]
ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ap.add_argument("--settings", default="216:128,128:128,64:64", help="candidates:ef pairs, comma-separated")
ap.add_argument("--serve-arg", action="append", default=[], help="extra option for the ANN servers (repeatable)")
args = ap.parse_args()
settings = [tuple(int(x) for x in pair.split(":")) for pair in args.settings.split(",")]
users = open(W+"/known_users.txt").read().split()
random.seed(1); sample = random.sample(users, 200)
exact = start(8901, ["--no-ann"]); ref = {u: top(8901, u) for u in sample}; exact.terminate(); exact.wait()
for cand, ef in settings:
    s = start(8902, ["--ann-candidates",str(cand),"--ann-ef",str(ef)] + args.serve_arg)
    r = sum(len(set(top(8902,u)) & set(ref[u])) for u in sample) / (10*len(sample))
    print(f"candidates {cand} ef {ef}: Recall@10 vs exact over {len(sample)} users = {r:.4f}", flush=True)
    s.terminate(); s.wait()

#!/usr/bin/python3
"""item2vec vs gensim Word2Vec (skip-gram, negative sampling) on the same sequences.

Both sides train on the train part of one prepared dataset: each user's items ordered
by (time, item) are one sequence (recforge builds them itself; this script writes the
same sequences, one line of item indices per user, for gensim). Same hyper-parameters on
both sides (vector size, window, negatives, sample, epochs, min_count, alpha, min_alpha,
ns_exponent), 2 threads / workers.

  speed   words/s = (sequence items) * epochs / training seconds, the minimum time over
          --repeats runs of each side. recforge: the sum of the per-epoch seconds that
          `recforge train --json` reports (vocabulary and sequence building excluded);
          gensim: model.train() after build_vocab(). recforge runs twice: hogwild=true
          (the like-for-like comparison: gensim is Hogwild) and the deterministic
          default. gensim runs from a LineSentence iterator and with corpus_file= (its
          fastest mode, no GIL); the ratio is printed against both.
  overlap similar-item overlap@10: for items with at least --min-occurrences training
          occurrences, |our top-10 cosine neighbours  &  gensim's most_similar top-10| / 10,
          averaged. As a reference, the same between two gensim runs with different
          seeds (the agreement two correct SGNS runs reach).

Usage (from the repo root, after building recforge and recforge_export_factors):
  /usr/bin/python3 bench/peer/item2vec_bench.py --build build/release \
      --speed-data /tmp/i2v-synth.tsv --quality-data ../shared/data/ml-100k/u.data
Without --speed-data the speed part uses a synthetic set made by `recforge data synth`.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def run(cmd, **kw):
    result = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if result.returncode != 0:
        sys.exit(f"failed ({result.returncode}): {' '.join(cmd)}\n{result.stderr}")
    return result.stdout


def prepare(recforge, source, work, name):
    ds = os.path.join(work, f"{name}-ds")
    prepared = os.path.join(work, f"{name}-prep")
    if not os.path.exists(prepared):
        run([recforge, "data", "ingest", source, "-o", ds])
        # ../shared/PROTOCOL.md split: the train part is what both sides see.
        run([recforge, "data", "prepare", ds, "-o", prepared, "--split", "ratio", "--test-ratio", "0.2",
             "--dedup", "first"])
    return prepared


def write_sequences(prepared, path):
    """One line per user (user index order): its train items (indices) by (time, item)."""
    train = os.path.join(prepared, "train")
    users = np.fromfile(os.path.join(train, "users.u32"), dtype="<u4")
    items = np.fromfile(os.path.join(train, "items.u32"), dtype="<u4")
    times = np.fromfile(os.path.join(train, "times.i64"), dtype="<i8")
    order = np.lexsort((items, times, users))
    users, items = users[order], items[order]
    bounds = np.flatnonzero(np.diff(users)) + 1
    with open(path, "w") as out:
        for chunk in np.split(items, bounds):
            out.write(" ".join(map(str, chunk.tolist())))
            out.write("\n")
    counts = np.bincount(items)
    return len(items), counts


def ours(recforge, prepared, spec, threads, output=None):
    cmd = [recforge, "train", "-d", prepared, "--model", spec, "--threads", str(threads), "--seed", "1",
           "--json", "--no-val-metrics"]
    if output:
        cmd += ["--output", output]
    summary = json.loads(run(cmd))
    return sum(epoch["seconds"] for epoch in summary["epochs"])


def gensim_model(path, words, params, threads, seed, corpus_file):
    from gensim.models import Word2Vec
    from gensim.models.word2vec import LineSentence
    model = Word2Vec(vector_size=params["factors"], window=params["window"], negative=params["negatives"],
                     sample=params["sample"], min_count=params["min_count"], alpha=params["lr"],
                     min_alpha=params["min_lr"], ns_exponent=params["ns_exponent"], sg=1, hs=0,
                     workers=threads, seed=seed)
    if corpus_file:
        model.build_vocab(corpus_file=path)
        start = time.perf_counter()
        model.train(corpus_file=path, total_words=model.corpus_total_words, total_examples=model.corpus_count,
                    epochs=params["epochs"])
    else:
        model.build_vocab(LineSentence(path))
        start = time.perf_counter()
        model.train(LineSentence(path), total_examples=model.corpus_count, epochs=params["epochs"])
    return model, time.perf_counter() - start


def spec_of(params, **extra):
    values = dict(params, **extra)
    return "item2vec:" + ",".join(f"{k}={v}" for k, v in sorted(values.items()))


def speed(args, recforge, work, params):
    if args.speed_data:
        prepared = prepare(recforge, args.speed_data, work, "speed")
    else:
        synth = os.path.join(work, "synth.tsv")
        if not os.path.exists(synth):
            run([recforge, "data", "synth", "-o", synth, "--format", "tsv", "--interactions",
                 str(args.synth_interactions), "--users", "20000", "--items", "20000"])
        prepared = prepare(recforge, synth, work, "speed")
    sequences = os.path.join(work, "speed-sequences.txt")
    words, _ = write_sequences(prepared, sequences)
    total = words * params["epochs"]
    print(f"speed set: {words:,} sequence items, {params['epochs']} epochs, {args.threads} threads, "
          f"min over {args.repeats} runs")
    rows = []
    for label, spec in (("recforge hogwild=true", spec_of(params, hogwild="true")),
                        ("recforge deterministic (default)", spec_of(params))):
        seconds = min(ours(recforge, prepared, spec, args.threads) for _ in range(args.repeats))
        rows.append((label, total / seconds))
    for label, corpus_file in (("gensim LineSentence", False), ("gensim corpus_file", True)):
        seconds = min(gensim_model(sequences, words, params, args.threads, 1, corpus_file)[1]
                      for _ in range(args.repeats))
        rows.append((label, total / seconds))
    for label, rate in rows:
        print(f"  {label:34s} {rate:12,.0f} words/s")
    ours_hogwild, ours_det, gensim_line, gensim_file = (rate for _, rate in rows)
    print(f"  ratio hogwild / gensim LineSentence      {ours_hogwild / gensim_line:.2f}x")
    print(f"  ratio hogwild / gensim corpus_file       {ours_hogwild / gensim_file:.2f}x")
    print(f"  ratio deterministic / gensim LineSentence {ours_det / gensim_line:.2f}x")
    print(f"  ratio deterministic / gensim corpus_file  {ours_det / gensim_file:.2f}x")


def top10_ours(q, item):
    scores = q @ q[item]
    scores[item] = -np.inf
    top = np.argpartition(-scores, 10)[:10]
    return set(top.tolist())


def overlap(args, recforge, export, work, params):
    prepared = prepare(recforge, args.quality_data, work, "quality")
    sequences = os.path.join(work, "quality-sequences.txt")
    words, counts = write_sequences(prepared, sequences)
    model_file = os.path.join(work, "quality.rfm")
    # scoring=cosine: Q is then the unit input vectors, whose dot products are the cosines
    # SimilarItems ranks by (with the default scoring=context, Q holds output vectors).
    ours(recforge, prepared, spec_of(params, scoring="cosine"), args.threads, output=model_file)
    out_dir = os.path.join(work, "quality-export")
    run([export, model_file, prepared, out_dir])
    q = np.load(os.path.join(out_dir, "Q.npy"))  # unit input vectors (scoring=cosine), 0 rows: no vector
    g1, _ = gensim_model(sequences, words, params, args.threads, 1, corpus_file=False)
    g2, _ = gensim_model(sequences, words, params, args.threads, 2, corpus_file=False)
    items = [i for i in range(len(counts)) if counts[i] >= args.min_occurrences and str(i) in g1.wv]
    ours_gensim, gensim_gensim = [], []
    for item in items:
        a = top10_ours(q, item)
        b = {int(word) for word, _ in g1.wv.most_similar(str(item), topn=10)}
        c = {int(word) for word, _ in g2.wv.most_similar(str(item), topn=10)}
        ours_gensim.append(len(a & b) / 10)
        gensim_gensim.append(len(b & c) / 10)
    print(f"overlap set: {words:,} sequence items, {len(items)} items with >= {args.min_occurrences} occurrences")
    print(f"  similar-item overlap@10 recforge vs gensim:        {np.mean(ours_gensim):.3f}")
    print(f"  similar-item overlap@10 gensim seed 1 vs seed 2:   {np.mean(gensim_gensim):.3f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--build", default="build/release", help="CMake build tree with recforge and bench binaries")
    parser.add_argument("--speed-data", help="ratings file for the speed part (default: recforge data synth)")
    parser.add_argument("--synth-interactions", type=int, default=2_000_000)
    parser.add_argument("--quality-data", default="../shared/data/ml-100k/u.data")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-occurrences", type=int, default=50)
    parser.add_argument("--factors", type=int, default=64)
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--negatives", type=int, default=5)
    parser.add_argument("--sample", type=float, default=1e-3)
    parser.add_argument("--speed-epochs", type=int, default=5)
    parser.add_argument("--overlap-epochs", type=int, default=20)
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--part", choices=["speed", "overlap", "both"], default="both")
    parser.add_argument("--work", help="scratch directory (default: a fresh temporary one)")
    args = parser.parse_args()
    recforge = os.path.join(args.build, "apps", "recforge", "recforge")
    if not os.path.exists(recforge):
        recforge = os.path.join(args.build, "recforge")
    export = os.path.join(args.build, "bench", "recforge_export_factors")
    params = {"factors": args.factors, "window": args.window, "negatives": args.negatives,
              "sample": args.sample, "min_count": args.min_count, "lr": 0.025, "min_lr": 0.0001,
              "ns_exponent": 0.75}
    work = args.work or tempfile.mkdtemp(prefix="item2vec-bench-")
    os.makedirs(work, exist_ok=True)
    if args.part in ("speed", "both"):
        speed(args, recforge, work, dict(params, epochs=args.speed_epochs))
    if args.part in ("overlap", "both"):
        overlap(args, recforge, export, work, dict(params, epochs=args.overlap_epochs))


if __name__ == "__main__":
    main()

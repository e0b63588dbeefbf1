#!/usr/bin/python3
"""LDA benchmark (issue 6): `lda` vs scikit-learn's LatentDirichletAllocation and gensim's
LdaMulticore on the same user-item corpus, at equal held-out perplexity.

For each dataset the script reads the interactions, keeps distinct (user, item) pairs
(binary counts: one token per interaction), holds out a random 20% of every user's items
(numpy seed 1; test items unseen in training are dropped), and fits every model on the
same users x items training matrix with the same topics K, alpha and eta:

  ours     build/<tree>/bench/recforge_bench_lda_fit: the `lda` family through the
           registry (spec lda:topics=K,alpha=A,eta=E,passes=P,burn_in=B), 2 threads;
           time of Recommender::Fit; P over a ladder, see below
  sklearn  LatentDirichletAllocation(n_components=K, doc_topic_prior=A,
           topic_word_prior=E, learning_method="batch", max_iter=--sklearn-iters,
           n_jobs=2), time of .fit()
  gensim   LdaMulticore(num_topics=K, alpha=[A]*K, eta=E, workers=2,
           passes=--gensim-passes, chunksize=2000, iterations=50), time of the
           constructor (which trains)

Held-out perplexity (docs/models/topic.md), one piece of code for every model: each
model's topic-item distributions phi (K x items, rows summing to 1) are exported (ours:
the model's item factors Q, which are phi transposed);
for each test user, theta_u is the fold-in of the user's *training* items against phi
with prior alpha (200 EM fixed-point iterations of
theta_k <- (alpha + sum_i theta_k phi_ki / sum_j theta_j phi_ji) / (n_u + K alpha)),
and
    perplexity = exp( - sum over test (u, i) of log sum_k theta_uk phi_ki / #test rows ).
Lower is better; a uniform model scores #items.

"At equal perplexity": ours runs at a ladder of passes (--passes, e.g. 5,10,...); for
each peer the script picks the cheapest of our runs whose perplexity is at most the
peer's (within --tolerance, default 0.5%) and prints peer time / our time.

Timing: each fit runs --repeats times (peers: --peer-repeats) and the minimum is kept.
The peers run with OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE unset and two BLAS threads.

  /usr/bin/python3 bench/peer/lda_bench.py [--datasets ml-100k,anime] [--topics 32]
      [--alpha 0.1] [--eta 0.05] [--passes 5,10,20,30,50] [--sklearn-iters 20]
      [--gensim-passes 10] [--peers sklearn,gensim] [--build build/release] [--work DIR]

Datasets: ml-100k (u.data, 100k ratings) and anime (anime-caserec anime_history.dat,
520k interactions, 5,000 users x 7,390 anime; the largest user-item corpus in
../shared/data, whose ml-1m lacks ratings.dat).
"""
import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DATA = os.environ.get("RECFORGE_DATA_DIR", os.path.join(os.path.dirname(ROOT), "shared", "data"))
DATASETS = {
    "ml-100k": os.path.join(DATA, "ml-100k", "u.data"),
    "anime": os.path.join(DATA, "anime-caserec", "anime_history.dat"),
}


def log(message):
    print(message, flush=True)


def run(cmd, capture=False):
    log("$ " + " ".join(str(c) for c in cmd))
    result = subprocess.run([str(c) for c in cmd], check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout if capture else None


def peer_env():
    env = dict(os.environ)
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env["OPENBLAS_NUM_THREADS"] = "2"
    env["OMP_NUM_THREADS"] = "2"
    return env


def load_split(name, seed=1):
    """Reads a dataset, keeps distinct (user, item) pairs (binary), and holds out a
    random 20% (floor, at least one for users with >= 2 items) of every user's items;
    test items unseen in training are dropped. Returns n_users, n_items, train, test
    as index arrays."""
    import numpy as np
    path = DATASETS[name]
    pairs = []
    with open(path, encoding="utf-8") as f:
        first = True
        for line in f:
            fields = line.split()
            if first and name == "anime":  # header row
                first = False
                continue
            first = False
            pairs.append((fields[0], fields[1]))
    users, items = {}, {}
    by_user = {}
    seen = set()
    for u, i in pairs:
        if (u, i) in seen:
            continue
        seen.add((u, i))
        uu = users.setdefault(u, len(users))
        ii = items.setdefault(i, len(items))
        by_user.setdefault(uu, []).append(ii)
    rng = np.random.default_rng(seed)
    train_u, train_i, test_u, test_i = [], [], [], []
    for uu in range(len(users)):
        row = np.array(by_user[uu])
        rng.shuffle(row)
        n_test = max(1, len(row) // 5) if len(row) >= 2 else 0
        test_u += [uu] * n_test
        test_i += list(row[:n_test])
        train_u += [uu] * (len(row) - n_test)
        train_i += list(row[n_test:])
    train = (np.asarray(train_u, dtype=np.int64), np.asarray(train_i, dtype=np.int64))
    in_train = np.zeros(len(items), dtype=bool)
    in_train[train[1]] = True
    test_u, test_i = np.asarray(test_u, dtype=np.int64), np.asarray(test_i, dtype=np.int64)
    keep = in_train[test_i]
    return len(users), len(items), train, (test_u[keep], test_i[keep])


def heldout_perplexity(phi, alpha, train, test, n_users):
    """Document-completion perplexity (see the module docstring). phi: K x items."""
    import numpy as np
    import scipy.sparse as sp
    phi = np.asarray(phi, dtype=np.float64)
    phi = phi / phi.sum(axis=1, keepdims=True)
    k_count, n_items = phi.shape
    x = sp.csr_matrix((np.ones(len(train[0])), train), shape=(n_users, n_items))
    x.sum_duplicates()
    x.data[:] = 1.0
    counts = np.asarray(x.sum(axis=1)).ravel()
    theta = np.full((n_users, k_count), 1.0 / k_count)
    rows = np.repeat(np.arange(n_users), np.diff(x.indptr))
    cols = x.indices
    phi_t = phi.T.copy()  # items x K
    for _ in range(200):
        dots = np.einsum("nk,nk->n", theta[rows], phi_t[cols]) + 1e-300
        r = sp.csr_matrix((x.data / dots, x.indices, x.indptr), shape=x.shape)
        theta = (alpha + theta * (r @ phi_t)) / (counts[:, None] + k_count * alpha)
    tu, ti = test
    p = np.einsum("nk,nk->n", theta[tu], phi_t[ti])
    return float(np.exp(-np.mean(np.log(p + 1e-300))))


def fit_ours(driver, train_txt, work, args, passes, n_items):
    import numpy as np
    spec = (f"lda:topics={args.topics},alpha={args.alpha},eta={args.eta},passes={passes},"
            f"burn_in={args.burn_in},init={args.init},report_bound=false")
    out = os.path.join(work, f"ours-{args.init}-{passes}.f32")
    best = None
    for _ in range(args.repeats):
        text = run([driver, train_txt, spec, "2", out], capture=True)
        seconds = json.loads(text)["fit_seconds"]
        best = seconds if best is None else min(best, seconds)
    q = np.fromfile(out, dtype=np.float32).reshape(n_items, args.topics)  # items x K = phi^T
    return best, q.T


def fit_sklearn(x, args):
    from sklearn.decomposition import LatentDirichletAllocation
    best, model = None, None
    for _ in range(args.peer_repeats):
        lda = LatentDirichletAllocation(n_components=args.topics, doc_topic_prior=args.alpha,
                                        topic_word_prior=args.eta, learning_method="batch",
                                        max_iter=args.sklearn_iters, n_jobs=2, random_state=0)
        start = time.perf_counter()
        lda.fit(x)
        seconds = time.perf_counter() - start
        if best is None or seconds < best:
            best, model = seconds, lda
    return best, model.components_


def fit_gensim(x, args):
    import numpy as np
    from gensim.models import LdaMulticore
    from gensim.matutils import Sparse2Corpus
    corpus = list(Sparse2Corpus(x, documents_columns=False))
    best, model = None, None
    for _ in range(args.peer_repeats):
        start = time.perf_counter()
        lda = LdaMulticore(corpus, num_topics=args.topics, id2word={i: str(i) for i in range(x.shape[1])},
                           workers=2, passes=args.gensim_passes, chunksize=2000, iterations=50,
                           alpha=np.full(args.topics, args.alpha), eta=args.eta, random_state=0,
                           eval_every=None)
        seconds = time.perf_counter() - start
        if best is None or seconds < best:
            best, model = seconds, lda
    return best, model.get_topics()


def peer_main(args):
    """Runs inside the peer environment: fits one peer, prints JSON {seconds, phi path}."""
    import numpy as np
    import scipy.sparse as sp
    data = np.load(args.peer_input)
    x = sp.csr_matrix((np.ones(len(data["rows"])), (data["rows"], data["cols"])),
                      shape=(int(data["n_users"]), int(data["n_items"])))
    x.sum_duplicates()
    x.data[:] = 1.0
    seconds, phi = (fit_sklearn if args.peer == "sklearn" else fit_gensim)(x, args)
    np.save(args.peer_output, np.asarray(phi, dtype=np.float64))
    print(json.dumps({"seconds": seconds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--datasets", default="ml-100k,anime")
    parser.add_argument("--topics", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--eta", type=float, default=0.05)
    parser.add_argument("--passes", default="5,10,20,30,50")
    parser.add_argument("--sklearn-iters", type=int, default=20)
    parser.add_argument("--gensim-passes", type=int, default=10)
    parser.add_argument("--burn-in", type=int, default=-1, help="ours: lda burn_in (-1 = restart gamma every pass)")
    parser.add_argument("--init", default="seeded", choices=["seeded", "random"],
                        help="ours: lda init (k-means++ seed users, or scikit-learn's Gamma noise alone)")
    parser.add_argument("--peers", default="sklearn,gensim")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=2)
    parser.add_argument("--tolerance", type=float, default=0.005)
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--work", default="/tmp/recforge-lda-bench")
    parser.add_argument("--peer", help=argparse.SUPPRESS)
    parser.add_argument("--peer-input", help=argparse.SUPPRESS)
    parser.add_argument("--peer-output", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer:
        return peer_main(args)

    import numpy as np
    driver = os.path.join(args.build, "bench", "recforge_bench_lda_fit")
    os.makedirs(args.work, exist_ok=True)
    summary = []
    for name in args.datasets.split(","):
        n_users, n_items, train, test = load_split(name)
        log(f"== {name}: {n_users} users, {n_items} items, {len(train[0])} train / {len(test[0])} test pairs, "
            f"K={args.topics}, alpha={args.alpha}, eta={args.eta}")
        work = os.path.join(args.work, name)
        os.makedirs(work, exist_ok=True)
        train_txt = os.path.join(work, "train.txt")
        with open(train_txt, "w") as f:
            f.write(f"{n_users} {n_items}\n")
            f.write("\n".join(f"{u} {i}" for u, i in zip(train[0], train[1])))
            f.write("\n")
        ours = []
        for passes in [int(p) for p in args.passes.split(",")]:
            seconds, phi = fit_ours(driver, train_txt, work, args, passes, n_items)
            perplexity = heldout_perplexity(phi, args.alpha, train, test, n_users)
            ours.append((passes, seconds, perplexity))
            log(f"ours     passes={passes:<4d} fit {seconds:8.3f} s   held-out perplexity {perplexity:9.2f}")
        peer_input = os.path.join(work, "train.npz")
        np.savez(peer_input, rows=train[0], cols=train[1], n_users=n_users, n_items=n_items)
        for peer in args.peers.split(","):
            if not peer:
                continue
            out = os.path.join(work, f"{peer}-phi.npy")
            cmd = [sys.executable, os.path.abspath(__file__), "--peer", peer, "--peer-input", peer_input,
                   "--peer-output", out, "--topics", str(args.topics), "--alpha", str(args.alpha),
                   "--eta", str(args.eta), "--sklearn-iters", str(args.sklearn_iters),
                   "--gensim-passes", str(args.gensim_passes), "--peer-repeats", str(args.peer_repeats)]
            log("$ " + " ".join(cmd))
            result = subprocess.run(cmd, check=True, text=True, stdout=subprocess.PIPE, env=peer_env())
            seconds = json.loads(result.stdout.strip().splitlines()[-1])["seconds"]
            perplexity = heldout_perplexity(np.load(out), args.alpha, train, test, n_users)
            setting = (f"max_iter={args.sklearn_iters}" if peer == "sklearn" else f"passes={args.gensim_passes}")
            log(f"{peer:8s} {setting:11s} fit {seconds:8.3f} s   held-out perplexity {perplexity:9.2f}")
            matching = [o for o in ours if o[2] <= perplexity * (1 + args.tolerance)]
            if matching:
                best = min(matching, key=lambda o: o[1])
                ratio = seconds / best[1]
                log(f"  -> ours at passes={best[0]} reaches {best[2]:.2f} <= {perplexity:.2f} in {best[1]:.3f} s: "
                    f"{ratio:.1f}x faster than {peer} (target >= 3x: {'met' if ratio >= 3 else 'NOT met'})")
                summary.append((name, peer, seconds, perplexity, best[0], best[1], best[2], ratio))
            else:
                log(f"  -> none of our runs reaches {peer}'s perplexity {perplexity:.2f}")
                summary.append((name, peer, seconds, perplexity, None, None, None, None))
    log("\n| dataset | peer | peer fit (s) | peer perplexity | our passes | our fit (s) | our perplexity | speed-up |")
    log("|---|---|---|---|---|---|---|---|")
    for name, peer, ps, pp, op, os_, opp, ratio in summary:
        if ratio is None:
            log(f"| {name} | {peer} | {ps:.2f} | {pp:.2f} | - | - | - | not reached |")
        else:
            log(f"| {name} | {peer} | {ps:.2f} | {pp:.2f} | {op} | {os_:.3f} | {opp:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()

#!/usr/bin/env bash
# The end-to-end demo: installs dependencies, builds, then
#   synthesise raw logs -> ingest -> prepare (k-core + temporal split) -> describe
#   -> baselines -> train iALS -> evaluate -> recommend -> list the recorded runs
#   -> register the model and serve it on loopback until Ctrl-C.
# Data and models go under ./demo/; every step is recorded as a run in the default
# tracking store ./mlruns.db + ./artifacts/ (all ignored by git), so `recforge runs
# list` and `recforge ui` show them right after.
#
# Environment: RECFORGE_DEMO_PORT (default 8000); RECFORGE_BIN=PATH uses that binary and
# skips the install and build steps; RECFORGE_DEMO_OUT (default ./demo); the tracking
# store follows RECFORGE_TRACKING_URI as every command does.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${RECFORGE_BIN:-}" ]; then
  scripts/install-deps.sh
  scripts/build.sh release
fi
rf=${RECFORGE_BIN:-build/release/recforge}
out=${RECFORGE_DEMO_OUT:-demo}
rm -rf "$out" && mkdir -p "$out"

echo "== 1. synthesise raw interaction logs (CSV with a header, Unix-second timestamps)"
$rf data synth --format csv --interactions 200000 --users 5000 --items 2000 --seed 7 --output "$out/raw.csv"
head -3 "$out/raw.csv"

echo "== 2. ingest the CSV into a binary dataset"
$rf data ingest "$out/raw.csv" --output "$out/dataset"

echo "== 3. prepare: dedup, 5-core, per-user 80/20 split by time"
$rf data prepare "$out/dataset" --output "$out/prepared" --min-user 5 --min-item 5 --split ratio --test-ratio 0.2

echo "== 4. describe"
$rf data describe "$out/prepared"

echo "== 5. baselines: train and evaluate several families with their defaults (one table)"
$rf baselines --dataset "$out/prepared" --baseline pop,itemknn,ials,bpr

echo "== 6. train implicit ALS"
$rf train --dataset "$out/prepared" --model "ials:factors=64,iters=10" --output "$out/ials.bin"

echo "== 7. evaluate it (full ranking, training items excluded)"
$rf evaluate --model "$out/ials.bin" --dataset "$out/prepared" --k 5,10,20

echo "== 8. recommend for one user"
user=$(head -1 "$out/prepared/user_ids.txt")
$rf recommend --model "$out/ials.bin" --dataset "$out/prepared" --user "$user" --k 10

echo "== 9. the runs recorded so far (tracking store ./mlruns.db)"
$rf runs list --limit 12
echo "(later: $rf runs show <id> --lineage; $rf ui for the dashboard at http://127.0.0.1:5000)"

echo "== 10. register the trained model and serve it (Ctrl-C to stop)"
train_run=$($rf runs list --experiment training --limit 1 --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)[0]["run_id"])')
version=$($rf models register --run "$train_run" --name demo --json |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')
$rf models alias demo production --version "$version"
port=${RECFORGE_DEMO_PORT:-8000}
base="http://127.0.0.1:$port"
user=$(head -1 "$out/prepared/user_ids.txt")
echo "Serving demo@production (version $version) on loopback:"
echo "  demo page:  $base/"
echo "  API docs:   $base/docs"
echo "  try:        curl -s $base/recommend -d '{\"user_id\": \"$user\", \"top_k\": 5}'"
exec $rf serve --model demo@production --dataset "$out/prepared" --host 127.0.0.1 --port "$port" \
  --events "$out/events.jsonl" --log-format text

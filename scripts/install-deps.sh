#!/usr/bin/env bash
# Installs every Debian 12 package RecForge needs to build, test and benchmark.
# Idempotent: re-running only installs what is missing. Needs root (or sudo).
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config git ca-certificates ccache
  # libraries
  libeigen3-dev        # dense linear algebra (factor models)
  libopenblas-dev      # BLAS with run-time CPU dispatch (batch scoring, Gram matrices)
  libsimdjson-dev      # JSON Lines parsing (Amazon reviews)
  zlib1g-dev           # .gz input (streaming inflate)
  libssl-dev           # SHA-256 content hashes (libcrypto)
  nlohmann-json3-dev   # meta.json and report writing
  libcli11-dev         # command-line parsing
  libfmt-dev           # formatting
  libsqlite3-dev       # tracking store
  libyaml-cpp-dev      # config files
  libcpp-httplib-dev   # HTTP server of the experiment dashboard
  libboost-dev         # Boost.Beast + Boost.Asio (header-only): the event-driven HTTP front end of serving
  libhnswlib-dev       # approximate nearest neighbours for retrieval at scale (serving)
  libxgboost-dev       # LambdaMART ranker of the two-stage model (C API)
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev
  python3 python3-numpy python3-pandas   # bench peers and the synthetic generator
  time                                   # /usr/bin/time -v for peak memory in benchmarks
  chromium                               # headless browser for the dashboard test
  wrk python3-fastapi python3-uvicorn    # serving benchmark: load generator and the Python peer
  python3-uvloop python3-httptools       # uvicorn's fast event loop and HTTP parser (uvicorn[standard])
  python3-torch python3-gensim python3-sklearn   # model peers: PyTorch NeuMF / SASRec, gensim Word2Vec / LDA, scikit-learn LDA
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for pkg in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
# npm, at build time only: `npm ci` in web/ fetches swagger-ui-dist for the /docs page of
# `recforge serve`. Installed only when absent: Debian's nodejs conflicts with a nodesource
# node that may already be there (and brings its own npm).
if ! command -v npm >/dev/null 2>&1; then missing+=(nodejs npm); fi

if [ "${#missing[@]}" -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present" >&2
  exit 0
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y --no-install-recommends "${missing[@]}"

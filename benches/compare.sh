#!/usr/bin/env bash
# The side-by-side benchmark: SpendQL vs DuckDB vs PostgreSQL on the same generated usage.
#   benches/compare.sh [--rows N] [--runs N] [--quick] [--json FILE] [--work DIR]
# --quick: 100k rows, 2 runs, the debug binary (CI runs it to keep the harness and the three
# systems' agreement working; its timings mean nothing). Otherwise the release binary.
# Installs what is missing: numpy, pyarrow, duckdb and psycopg from PyPI, PostgreSQL from apt.
set -euo pipefail
cd "$(dirname "$0")/.."

rows=10000000
runs=5
quick=0
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) rows="$2"; shift 2 ;;
    --runs) runs="$2"; shift 2 ;;
    --quick) quick=1; rows=100000; runs=2; shift ;;
    --json|--work) extra+=("$1" "$2"); shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

python3 -c 'import numpy, pyarrow, duckdb, psycopg' 2>/dev/null ||
  pip install -q "numpy==2.4.6" "pyarrow==26.0.1" "duckdb==2.0.1" "psycopg[binary]==3.3.9"
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi

target="${CARGO_TARGET_DIR:-target}"
if [ "$quick" = 1 ]; then
  cargo build --locked --bin spendql
  binary="$target/debug/spendql"
else
  cargo build --locked --release --bin spendql
  binary="$target/release/spendql"
fi
exec python3 benches/compare/compare.py --rows "$rows" --runs "$runs" --spendql "$binary" "${extra[@]}"

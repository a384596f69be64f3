#!/usr/bin/env python3
"""The spend-dashboard workload on SpendQL, DuckDB and PostgreSQL, side by side.

Same generated data (generate.py) in each system, the way its users would hold it:
  SpendQL     `spendql ingest --format parquet`, queried over pgwire with psycopg (full
              round trip); costs come from the `spend` view (the catalog, at query time).
  DuckDB      the Parquet file as is; costs are a join to the effective-dated price table.
  PostgreSQL  15, started here on a loopback port; rows COPYed in with their cost stored
              per row (as LiteLLM keeps its spend logs), an index on ts, ANALYZE.
Every query's answer must agree across the three (money to the cent, scores to 1e-6);
then per-query medians, the ratios SpendQL/DuckDB and SpendQL/PostgreSQL, load
throughput and peak memory are printed, and written as JSON with --json.
"""
import argparse
import datetime as dt
import decimal
import json
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))

# Each query once per system: (name, spendql, duckdb, postgres). `spend` is each system's
# costed usage (SpendQL's view; DuckDB's join view; PostgreSQL's table with a cost column),
# `usage` its uncosted rows.
SINCE_30D = "2026-10-02T00:00:00Z"
MONTH_START, MONTH_END = "2026-10-01T00:00:00Z", "2026-11-01T00:00:00Z"


def query(name, common, **dialects):
    return name, {k: dialects.get(k, common) for k in ("spendql", "duckdb", "postgres")}


ANOMALY_DAILY = ("WITH d AS (SELECT team, date_trunc('day', ts) AS day, "
                 "CAST(sum(cost) AS DOUBLE PRECISION) AS spend FROM spend GROUP BY 1, 2) ")
QUERIES = [
    query("spend_by_month_team",
          "SELECT date_trunc('month', ts) AS month, team, sum(cost) AS cost FROM spend "
          "GROUP BY 1, 2 ORDER BY 1, 2"),
    query("top_customers_30d",
          f"SELECT customer, sum(cost) AS cost, count(*) AS calls FROM spend "
          f"WHERE ts >= '{SINCE_30D}' AND customer IS NOT NULL "
          f"GROUP BY customer ORDER BY cost DESC, customer LIMIT 20"),
    query("team_daily_by_feature",
          "SELECT date_trunc('day', ts) AS day, feature, sum(cost) AS cost FROM spend "
          "WHERE team = 'search' GROUP BY 1, 2 ORDER BY 1, 2"),
    query("cost_tokens_by_model_tier",
          "SELECT provider, model, service_tier, count(*) AS calls, "
          "sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached_tokens, "
          "sum(output_tokens) AS output_tokens, sum(cost) AS cost FROM spend "
          "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3"),
    query("distinct_customers_feature_week",
          "SELECT date_trunc('week', ts) AS week, feature, count(DISTINCT customer) AS customers "
          "FROM usage GROUP BY 1, 2 ORDER BY 1, 2"),
    query("prod_daily_by_provider",
          "SELECT date_trunc('day', ts) AS day, provider, sum(cost) AS cost FROM spend "
          "WHERE environment = 'prod' GROUP BY 1, 2 ORDER BY 1, 2"),
    query("budget_status",
          f"WITH mtd AS (SELECT team, sum(cost) AS spend FROM spend "
          f"WHERE ts >= '{MONTH_START}' AND ts < '{MONTH_END}' GROUP BY team) "
          f"SELECT b.budget_id, b.scope_value AS team, b.amount, m.spend, "
          f"CAST(m.spend AS DOUBLE PRECISION) / CAST(b.amount AS DOUBLE PRECISION) AS pct_used "
          f"FROM budgets b LEFT JOIN mtd m ON m.team = b.scope_value "
          f"WHERE b.scope = 'team' ORDER BY b.budget_id"),
    query("anomaly_scores_team_day", None,
          spendql=ANOMALY_DAILY.replace("DOUBLE PRECISION", "DOUBLE")
          + "SELECT team, day, spend, anomaly_score(spend) OVER (PARTITION BY team ORDER BY day) "
            "AS score FROM d ORDER BY team, day",
          duckdb=ANOMALY_DAILY.replace("DOUBLE PRECISION", "DOUBLE")
          + ", w AS (SELECT team, day, spend, "
            "median(spend) OVER win AS med, mad(spend) OVER win AS mad, count(spend) OVER win AS n "
            "FROM d WINDOW win AS (PARTITION BY team ORDER BY day ROWS BETWEEN 28 PRECEDING AND 1 PRECEDING)) "
            "SELECT team, day, spend, CASE WHEN n >= 7 THEN (spend - med) / "
            "greatest(1.4826 * mad, abs(med) * 0.01, 1e-9) END AS score FROM w ORDER BY team, day",
          postgres=ANOMALY_DAILY
          + ", w AS (SELECT d.team, d.day, h.x FROM d JOIN LATERAL (SELECT d2.spend AS x FROM d d2 "
            "WHERE d2.team = d.team AND d2.day < d.day ORDER BY d2.day DESC LIMIT 28) h ON true), "
            "m AS (SELECT team, day, percentile_cont(0.5) WITHIN GROUP (ORDER BY x) AS med, "
            "count(*) AS n FROM w GROUP BY 1, 2), "
            "a AS (SELECT m.team, m.day, m.med, m.n, percentile_cont(0.5) WITHIN GROUP "
            "(ORDER BY abs(w.x - m.med)) AS mad FROM m JOIN w USING (team, day) GROUP BY 1, 2, 3, 4) "
            "SELECT d.team, d.day, d.spend, CASE WHEN a.n >= 7 THEN (d.spend - a.med) / "
            "greatest(1.4826 * a.mad, abs(a.med) * 0.01, 1e-9) END AS score "
            "FROM d LEFT JOIN a USING (team, day) ORDER BY 1, 2"),
]
# The columns each query reads (cost needs the tokens, model, tier and time to price them),
# for the physical limit: their decoded bytes over the machine's memory bandwidth.
COSTING = ["ts", "provider", "model", "service_tier", "input_tokens", "cached_input_tokens",
           "cache_write_tokens", "output_tokens"]
QUERY_COLUMNS = {
    "spend_by_month_team": COSTING + ["team"],
    "top_customers_30d": COSTING + ["customer"],
    "team_daily_by_feature": COSTING + ["team", "feature"],
    "cost_tokens_by_model_tier": COSTING,
    "distinct_customers_feature_week": ["ts", "feature", "customer"],
    "prod_daily_by_provider": COSTING + ["environment"],
    "budget_status": COSTING + ["team"],
    "anomaly_scores_team_day": COSTING + ["team"],
}

# SpendQL spells the cost column list_cost (no contracts here, so effective = list).
for _name, sqls in QUERIES:
    sqls["spendql"] = sqls["spendql"].replace("sum(cost)", "sum(list_cost)")

DUCKDB_SETUP = """
SET TimeZone = 'UTC';
CREATE VIEW usage AS SELECT * FROM read_parquet('{data}/usage.parquet');
CREATE TABLE prices AS SELECT provider, model, service_tier,
  CAST(effective_from AS TIMESTAMPTZ) AS effective_from,
  CAST(NULLIF(effective_to, '') AS TIMESTAMPTZ) AS effective_to,
  CAST(input_per_mtok AS DECIMAL(18, 6)) AS input_per_mtok,
  CAST(cached_input_per_mtok AS DECIMAL(18, 6)) AS cached_input_per_mtok,
  CAST(cache_write_per_mtok AS DECIMAL(18, 6)) AS cache_write_per_mtok,
  CAST(output_per_mtok AS DECIMAL(18, 6)) AS output_per_mtok
FROM read_csv('{data}/prices.csv', all_varchar = true);
CREATE VIEW spend AS SELECT u.*,
  (u.input_tokens * p.input_per_mtok + u.cached_input_tokens * p.cached_input_per_mtok
   + u.cache_write_tokens * p.cache_write_per_mtok + u.output_tokens * p.output_per_mtok)
  * CAST(0.000001 AS DECIMAL(7, 6)) AS cost
FROM usage u JOIN prices p
  ON p.provider = u.provider AND p.model = u.model AND p.service_tier = u.service_tier
 AND u.ts >= p.effective_from AND (p.effective_to IS NULL OR u.ts < p.effective_to);
CREATE TABLE budgets AS SELECT budget_id, 'team' AS scope, team AS scope_value,
  CAST(amount AS DECIMAL(38, 12)) AS amount FROM read_csv('{data}/budgets.csv', all_varchar = true);
"""

PG_SETUP = """
CREATE TABLE spend (
  event_id text PRIMARY KEY, ts timestamptz NOT NULL, provider text NOT NULL,
  model text NOT NULL, input_tokens bigint NOT NULL, cached_input_tokens bigint NOT NULL,
  cache_write_tokens bigint NOT NULL, output_tokens bigint NOT NULL,
  service_tier text NOT NULL, team text, feature text, customer text, environment text,
  latency_ms integer, cost numeric(38, 12) NOT NULL);
CREATE VIEW usage AS SELECT * FROM spend;
CREATE TABLE budgets (budget_id text PRIMARY KEY, scope text, scope_value text,
  amount numeric(38, 12));
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid):
    """User plus system CPU time the process has used, in seconds (0 if unreadable)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def wait_until_idle(pid, quiet=0.5, limit=30.0):
    """Wait until the process uses under 5% of a core over `quiet` seconds (at most `limit`
    seconds): SpendQL evaluates every budget once at start, work DuckDB and PostgreSQL do
    not have, and timing it with the dashboard's queries only adds noise."""
    deadline = time.monotonic() + limit
    before = cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = cpu_seconds(pid)
        if now - before < 0.05 * quiet:
            return
        before = now


def timed(run, runs):
    """Warm once, then `runs` timed repetitions: (median seconds, last result)."""
    result = run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def normalise(rows):
    """Rows as comparable tuples: money to the cent, other fractions to 1e-6, times as text."""
    out = []
    for row in rows:
        cells = []
        for v in row:
            if isinstance(v, decimal.Decimal):
                cells.append(("money", v))
            elif isinstance(v, float):
                cells.append(("float", v))
            elif isinstance(v, (dt.datetime, dt.date)):
                if isinstance(v, dt.datetime) and v.tzinfo is not None:
                    v = v.astimezone(dt.timezone.utc).replace(tzinfo=None)
                cells.append(("text", v.isoformat()))
            elif v is None:
                cells.append(("null", None))
            else:
                cells.append(("text", str(v)))
        out.append(cells)
    return out


def same(a, b):
    """Two normalised results agree: money within half a cent, floats within 1e-6."""
    if len(a) != len(b):
        return f"{len(a)} rows vs {len(b)}"
    for i, (ra, rb) in enumerate(zip(a, b)):
        if len(ra) != len(rb):
            return f"row {i}: {len(ra)} columns vs {len(rb)}"
        for j, ((ka, va), (kb, vb)) in enumerate(zip(ra, rb)):
            if va is None or vb is None:
                if va is not vb:
                    return f"row {i} col {j}: {va!r} vs {vb!r}"
            elif "money" in (ka, kb) and "float" not in (ka, kb):
                if abs(decimal.Decimal(va) - decimal.Decimal(vb)) > decimal.Decimal("0.005"):
                    return f"row {i} col {j}: {va} vs {vb}"
            elif "float" in (ka, kb) or "money" in (ka, kb):
                fa, fb = float(va), float(vb)
                if abs(fa - fb) > 1e-6 * max(1.0, abs(fa), abs(fb)):
                    return f"row {i} col {j}: {fa} vs {fb}"
            elif va != vb:
                return f"row {i} col {j}: {va!r} vs {vb!r}"
    return None


# ---------------------------------------------------------------------------- SpendQL

def run_spendql(binary, data, work, runs, spend_dir=None, preexec=None):
    """Load `data` into a fresh data directory and time the queries over pgwire.
    `preexec`, if given, runs in the ingest and server processes before they start
    (scale.py moves them into a memory-limited cgroup there)."""
    import psycopg
    spend_dir = spend_dir or os.path.join(work, "spendql-data")
    shutil.rmtree(spend_dir, ignore_errors=True)
    env = dict(os.environ, SPENDQL_LOG="warn")

    def cli(*args):
        subprocess.run([binary, *args], check=True, env=env, stdout=subprocess.DEVNULL)

    # The benchmark's own price catalog replaces the bundled one.
    cli("sql", "--data", spend_dir, "DELETE FROM pricing")
    cli("pricing", "import", "--format", "csv", "--data", spend_dir, f"{data}/prices.csv")
    with open(f"{data}/budgets.csv") as f:
        lines = f.read().split("\n")[1:]
    values = ", ".join(f"('{b}', 'team', '{t}', {a})" for b, t, a in
                       (line.split(",") for line in lines if line))
    cli("sql", "--data", spend_dir,
        f"INSERT INTO budgets (budget_id, scope, scope_value, amount) VALUES {values}")
    start = time.perf_counter()
    load = subprocess.run([binary, "ingest", "--format", "parquet", "--data", spend_dir,
                           f"{data}/usage.parquet"], env=env, capture_output=True, text=True,
                          preexec_fn=preexec)
    load_seconds = time.perf_counter() - start
    if load.returncode != 0:
        sys.exit(f"spendql ingest failed: {load.stderr}")

    port = free_port()
    started = time.perf_counter()
    server = subprocess.Popen([binary, "serve", "--data", spend_dir, "--listen",
                               f"127.0.0.1:{port}"], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, preexec_fn=preexec)
    try:
        conn = None
        for _ in range(600):
            try:
                conn = psycopg.connect(host="127.0.0.1", port=port, user="bench",
                                       dbname="spendql", autocommit=True)
                break
            except psycopg.OperationalError:
                time.sleep(0.05)
        if conn is None:
            sys.exit("spendql serve did not accept connections")
        first = QUERIES[0][1]["spendql"]
        conn.execute(first).fetchall()
        cold_start = time.perf_counter() - started
        wait_until_idle(server.pid)
        results = {}
        for name, sqls in QUERIES:
            seconds, rows = timed(lambda: conn.execute(sqls["spendql"]).fetchall(), runs)
            results[name] = (seconds, rows)
        conn.close()
        peak = peak_rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    return {"load_seconds": load_seconds, "cold_start_seconds": cold_start,
            "peak_rss_mib": peak / 1024, "queries": results}


# ---------------------------------------------------------------------------- DuckDB

def duckdb_worker(data, runs, out):
    """Runs in its own process so that its peak memory is DuckDB's."""
    import duckdb
    conn = duckdb.connect()
    start = time.perf_counter()
    conn.execute(f"CREATE TABLE loaded AS SELECT * FROM read_parquet('{data}/usage.parquet')")
    load_seconds = time.perf_counter() - start
    conn.execute("DROP TABLE loaded")
    conn.execute(DUCKDB_SETUP.format(data=data))
    results = {}
    for name, sqls in QUERIES:
        seconds, rows = timed(lambda: conn.execute(sqls["duckdb"]).fetchall(), runs)
        results[name] = (seconds, rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with open(out, "w") as f:
        json.dump({"load_seconds": load_seconds, "peak_rss_mib": peak / 1024,
                   "queries": {k: (s, [[encode(v) for v in r] for r in rows])
                               for k, (s, rows) in results.items()}}, f)


def encode(v):
    if isinstance(v, decimal.Decimal):
        return {"d": str(v)}
    if isinstance(v, (dt.datetime, dt.date)):
        return {"t": v.isoformat()}
    return v


def decode(v):
    if isinstance(v, dict) and "d" in v:
        return decimal.Decimal(v["d"])
    if isinstance(v, dict) and "t" in v:
        return dt.datetime.fromisoformat(v["t"])
    return v


def run_duckdb(data, work, runs):
    out = os.path.join(work, "duckdb.json")
    subprocess.run([sys.executable, __file__, "--duckdb-worker", data, str(runs), out],
                   check=True)
    with open(out) as f:
        result = json.load(f)
    result["queries"] = {k: (s, [[decode(v) for v in r] for r in rows])
                         for k, (s, rows) in result["queries"].items()}
    return result


# ---------------------------------------------------------------------------- PostgreSQL

def pg_bin():
    for version in ("15", "16", "17"):
        path = f"/usr/lib/postgresql/{version}/bin"
        if os.path.exists(os.path.join(path, "postgres")):
            return path
    sys.exit("PostgreSQL server binaries not found (apt-get install postgresql)")


def as_postgres_user(cmd):
    return (["runuser", "-u", "postgres", "--"] + cmd) if os.geteuid() == 0 else cmd


def run_postgres(data, work, runs):
    import psycopg
    bindir = pg_bin()
    pgdata = os.path.join(work, "pgdata")
    shutil.rmtree(pgdata, ignore_errors=True)
    os.makedirs(pgdata)
    if os.geteuid() == 0:
        shutil.chown(pgdata, "postgres", "postgres")
        os.chmod(work, 0o755)
    subprocess.run(as_postgres_user([f"{bindir}/initdb", "-D", pgdata, "-A", "trust", "-U",
                                     "bench", "--no-sync"]), check=True,
                   stdout=subprocess.DEVNULL)
    port = free_port()
    options = (f"-p {port} -k {pgdata} -c listen_addresses=127.0.0.1 -c shared_buffers=1GB "
               f"-c work_mem=256MB -c max_wal_size=8GB -c max_parallel_workers_per_gather=2 "
               f"-c timezone=UTC")
    subprocess.run(as_postgres_user([f"{bindir}/pg_ctl", "-D", pgdata, "-o", options, "-w",
                                     "-l", os.path.join(pgdata, "log"), "start"]), check=True,
                   stdout=subprocess.DEVNULL)
    try:
        conn = psycopg.connect(host="127.0.0.1", port=port, user="bench", dbname="postgres",
                               autocommit=True)
        conn.execute(PG_SETUP)
        start = time.perf_counter()
        with conn.cursor() as cur:
            with cur.copy("COPY spend FROM STDIN WITH (FORMAT csv, HEADER)") as copy:
                with open(f"{data}/usage_pg.csv", "rb") as f:
                    while chunk := f.read(1 << 20):
                        copy.write(chunk)
        conn.execute("CREATE INDEX spend_ts ON spend (ts)")
        conn.execute("ANALYZE spend")
        load_seconds = time.perf_counter() - start
        with conn.cursor() as cur:
            with cur.copy("COPY budgets FROM STDIN") as copy:
                with open(f"{data}/budgets.csv") as f:
                    for line in f.read().split("\n")[1:]:
                        if line:
                            b, t, a = line.split(",")
                            copy.write_row((b, "team", t, a))
        results = {}
        for name, sqls in QUERIES:
            seconds, rows = timed(lambda: conn.execute(sqls["postgres"]).fetchall(), runs)
            results[name] = (seconds, rows)
        conn.close()
        # The postmaster and its children (the backend that ran the queries, workers).
        postmaster = int(open(os.path.join(pgdata, "postmaster.pid")).readline())
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True,
                                  text=True).stdout.split()
        peak = max(peak_rss_kib(int(pid)) for pid in [postmaster, *children])
    finally:
        subprocess.run(as_postgres_user([f"{bindir}/pg_ctl", "-D", pgdata, "-m", "fast",
                                         "stop"]), stdout=subprocess.DEVNULL)
    return {"load_seconds": load_seconds, "peak_rss_mib": peak / 1024, "queries": results}


# ---------------------------------------------------------------------------- the limit

def memory_bandwidth():
    """Bytes per second a simple copy loop moves (read + write), best of 5."""
    import numpy as np
    source = np.ones(256 * 1024 * 1024 // 8)
    target = np.empty_like(source)
    best = 0.0
    for _ in range(5):
        start = time.perf_counter()
        np.copyto(target, source)
        best = max(best, 2 * source.nbytes / (time.perf_counter() - start))
    return best


def column_bytes(data):
    """Decoded (uncompressed) bytes per column of the usage Parquet file."""
    import pyarrow.parquet as pq
    meta = pq.ParquetFile(os.path.join(data, "usage.parquet")).metadata
    sizes = {}
    for g in range(meta.num_row_groups):
        group = meta.row_group(g)
        for c in range(group.num_columns):
            column = group.column(c)
            sizes[column.path_in_schema] = (sizes.get(column.path_in_schema, 0)
                                            + column.total_uncompressed_size)
    return sizes


def physical_limits(data):
    """Per query: the bytes it must read and the time reading them takes at memory speed."""
    bandwidth = memory_bandwidth()
    sizes = column_bytes(data)
    return bandwidth, {name: (sum(sizes[c] for c in columns),
                              sum(sizes[c] for c in columns) / bandwidth)
                       for name, columns in QUERY_COLUMNS.items()}


# ---------------------------------------------------------------------------- main

def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--duckdb-worker":
        duckdb_worker(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--limits":
        bandwidth, limits = physical_limits(sys.argv[2])
        print(f"memory bandwidth (copy loop): {bandwidth / 1e9:.1f} GB/s")
        for name, (size, seconds) in limits.items():
            print(f"{name:34} {size / 1e6:9.0f} MB {seconds * 1e3:9.1f} ms")
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--spendql", required=True, help="the spendql binary")
    parser.add_argument("--work", default=None, help="where data and databases go")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="spendql-compare-")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, f"data-{args.rows}")
    if not os.path.exists(os.path.join(data, "meta.json")):
        print(f"generating {args.rows:,} rows into {data}", flush=True)
        subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), "--rows",
                        str(args.rows), "--out", data, "--root", ROOT], check=True)
    with open(os.path.join(data, "meta.json")) as f:
        meta = json.load(f)

    print("SpendQL ...", flush=True)
    spendql = run_spendql(os.path.abspath(args.spendql), data, work, args.runs)
    print("DuckDB ...", flush=True)
    duck = run_duckdb(data, work, args.runs)
    print("PostgreSQL ...", flush=True)
    pg = run_postgres(data, work, args.runs)

    failures = []
    for name, _sqls in QUERIES:
        ours = normalise(spendql["queries"][name][1])
        for other, label in ((duck, "DuckDB"), (pg, "PostgreSQL")):
            problem = same(ours, normalise(other["queries"][name][1]))
            if problem:
                failures.append(f"{name}: SpendQL and {label} differ: {problem}")

    rows = meta["rows"]
    print(f"\n{rows:,} rows, total cost {meta['total_cost']} USD; medians of {args.runs} runs")
    print(f"{'query':34} {'SpendQL ms':>11} {'DuckDB ms':>10} {'PG ms':>10} "
          f"{'/DuckDB':>8} {'/PG':>8}")
    totals = [0.0, 0.0, 0.0]
    report = {"rows": rows, "runs": args.runs, "queries": {}}
    for name, _sqls in QUERIES:
        s, d, p = (r["queries"][name][0] for r in (spendql, duck, pg))
        totals = [totals[0] + s, totals[1] + d, totals[2] + p]
        report["queries"][name] = {"spendql_ms": s * 1e3, "duckdb_ms": d * 1e3,
                                   "postgres_ms": p * 1e3}
        print(f"{name:34} {s * 1e3:11.1f} {d * 1e3:10.1f} {p * 1e3:10.1f} "
              f"{s / d:8.2f} {s / p:8.3f}")
    s, d, p = totals
    print(f"{'TOTAL':34} {s * 1e3:11.1f} {d * 1e3:10.1f} {p * 1e3:10.1f} {s / d:8.2f} {s / p:8.3f}")
    print(f"\nload (rows/s): SpendQL ingest {rows / spendql['load_seconds']:,.0f}, "
          f"DuckDB CREATE TABLE AS {rows / duck['load_seconds']:,.0f}, "
          f"PostgreSQL COPY + index {rows / pg['load_seconds']:,.0f}")
    print(f"peak memory (MiB): SpendQL {spendql['peak_rss_mib']:,.0f}, "
          f"DuckDB {duck['peak_rss_mib']:,.0f} (with Python), "
          f"PostgreSQL {pg['peak_rss_mib']:,.0f} (its largest process)")
    print(f"SpendQL cold start to the first answer: {spendql['cold_start_seconds']:.2f} s")
    bandwidth, limits = physical_limits(data)
    print(f"\nphysical limit: the decoded bytes of the columns a query reads, at the memory "
          f"bandwidth of a copy loop ({bandwidth / 1e9:.1f} GB/s)")
    print(f"{'query':34} {'MB read':>9} {'limit ms':>9} {'SpendQL/limit':>14}")
    for name, (size, seconds) in limits.items():
        ours = spendql["queries"][name][0]
        print(f"{name:34} {size / 1e6:9.0f} {seconds * 1e3:9.1f} {ours / seconds:14.1f}")
    report.update({
        "total_ms": {"spendql": s * 1e3, "duckdb": d * 1e3, "postgres": p * 1e3},
        "load_rows_per_s": {"spendql": rows / spendql["load_seconds"],
                            "duckdb": rows / duck["load_seconds"],
                            "postgres": rows / pg["load_seconds"]},
        "peak_rss_mib": {"spendql": spendql["peak_rss_mib"], "duckdb": duck["peak_rss_mib"],
                         "postgres": pg["peak_rss_mib"]},
        "cold_start_s": spendql["cold_start_seconds"],
        "memory_bandwidth_gb_s": bandwidth / 1e9,
        "physical_limit_ms": {k: v[1] * 1e3 for k, v in limits.items()},
        "disagreements": failures,
    })
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    if failures:
        print("\nANSWERS DIFFER:")
        for failure in failures:
            print("  " + failure)
        sys.exit(1)
    print("\nall answers agree across SpendQL, DuckDB and PostgreSQL")


if __name__ == "__main__":
    main()

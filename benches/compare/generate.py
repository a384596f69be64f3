#!/usr/bin/env python3
"""Seeded generator of realistic LLM usage for the side-by-side benchmark.

Writes into OUT:
  usage.parquet   one row per API call, in SpendQL's usage columns (SpendQL and DuckDB read it)
  usage_pg.csv    the same rows with their exact cost per row (PostgreSQL, LiteLLM style)
  prices.csv      the effective-dated price catalog, in `spendql pricing import --format csv`
  budgets.csv     monthly team budgets
  meta.json       the anchor time and row count

Realism: provider and model shares like a company's mix; prompt and output token counts
drawn from the real Azure LLM inference trace (testdata/traces, CC-BY 4.0) with jitter;
cache reads on repeated prefixes, batch traffic, 8 teams and 40 features, a Zipf tail of
5000 customers, weekday seasonality, 3% weekly growth, and one price cut mid-window.

Costs are exact: every price has at most 6 decimals per million tokens, so a row's cost in
units of 1e-12 USD is tokens * price_in_1e-9 / 1000, an integer.
"""
import argparse
import csv
import json
import os
from datetime import datetime, timedelta, timezone

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

ANCHOR = datetime(2026, 11, 1, tzinfo=timezone.utc)
DAYS = 180
PRICE_CUT_DAY = 90  # days after the window start when o3 gets cheaper

# provider, model, share, cache (share of calls with cache reads), batch share,
# prices per 1M tokens: input, cached input, cache write, output; batch at half.
MODELS = [
    ("openai", "gpt-4o", 0.10, 0.3, 0.10, (2.5, 1.25, 2.5, 10.0)),
    ("openai", "gpt-4o-mini", 0.22, 0.3, 0.15, (0.15, 0.075, 0.15, 0.6)),
    ("openai", "gpt-4.1", 0.06, 0.3, 0.05, (2.0, 0.5, 2.0, 8.0)),
    ("openai", "gpt-4.1-mini", 0.10, 0.3, 0.05, (0.4, 0.1, 0.4, 1.6)),
    ("openai", "o3", 0.02, 0.2, 0.0, (2.0, 0.5, 2.0, 8.0)),
    ("anthropic", "claude-sonnet-4-0", 0.12, 0.5, 0.05, (3.0, 0.3, 3.75, 15.0)),
    ("anthropic", "claude-3-5-haiku-latest", 0.10, 0.4, 0.10, (0.8, 0.08, 1.0, 4.0)),
    ("anthropic", "claude-opus-4-0", 0.01, 0.5, 0.0, (15.0, 1.5, 18.75, 75.0)),
    ("google", "gemini-2.5-flash", 0.12, 0.2, 0.0, (0.3, 0.075, 0.3, 2.5)),
    ("google", "gemini-2.5-pro", 0.04, 0.2, 0.0, (1.25, 0.31, 1.25, 10.0)),
    ("mistral", "mistral-large-latest", 0.06, 0.0, 0.0, (2.0, 2.0, 2.0, 6.0)),
    ("deepseek", "deepseek-chat", 0.05, 0.3, 0.0, (0.27, 0.07, 0.27, 1.1)),
]
# o3 before the cut.
O3_BEFORE = (10.0, 2.5, 10.0, 40.0)
TEAMS = ["search", "support", "sales", "growth", "data", "platform", "legal", "finance"]
FEATURES_PER_TEAM = 5
CUSTOMERS = 5000
ENVIRONMENTS = (["prod", "staging", "dev"], [0.85, 0.10, 0.05])


def nano(price):
    """USD per 1M tokens in units of 1e-9, exact."""
    value = round(price * 1_000_000_000)
    assert value % 1000 == 0, f"{price} has more than 6 decimals"
    return value


def trace_tokens(root):
    path = os.path.join(root, "testdata", "traces", "AzureLLMInferenceTrace_code.csv")
    prompts, outputs = [], []
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            prompts.append(int(row["ContextTokens"]))
            outputs.append(int(row["GeneratedTokens"]))
    return np.array(prompts, dtype=np.int64), np.array(outputs, dtype=np.int64)


def price_rows():
    """The catalog: (provider, model, tier, from, to, input, cached, write, output)."""
    start = ANCHOR - timedelta(days=DAYS)
    cut = start + timedelta(days=PRICE_CUT_DAY)
    epoch = datetime(2020, 1, 1, tzinfo=timezone.utc)
    rows = []
    for provider, model, _share, _cache, batch, prices in MODELS:
        periods = [(epoch, None, prices)]
        if model == "o3":
            periods = [(epoch, cut, O3_BEFORE), (cut, None, prices)]
        for start_at, end_at, p in periods:
            rows.append((provider, model, "standard", start_at, end_at, *p))
            if batch > 0:
                rows.append((provider, model, "batch", start_at, end_at, *(x / 2 for x in p)))
    return rows, cut


def generate(rows, seed, root):
    rng = np.random.default_rng(seed)
    start = ANCHOR - timedelta(days=DAYS)
    # Days: 3% weekly growth, weekends at half.
    day_index = np.arange(DAYS)
    weekday = [(start + timedelta(days=int(d))).weekday() for d in day_index]
    weights = (1.03 ** (day_index / 7.0)) * np.where(np.array(weekday) >= 5, 0.5, 1.0)
    weights /= weights.sum()
    day = rng.choice(DAYS, size=rows, p=weights)
    # Business hours are busier.
    hour_weights = np.array([0.4] * 7 + [1.0] * 12 + [0.6] * 5)
    hour_weights /= hour_weights.sum()
    seconds = rng.choice(24, size=rows, p=hour_weights) * 3600 + rng.integers(0, 3600, size=rows)
    start_us = int(start.timestamp()) * 1_000_000
    ts = start_us + day.astype(np.int64) * 86_400_000_000 + seconds.astype(np.int64) * 1_000_000
    ts += rng.integers(0, 1_000_000, size=rows)

    shares = np.array([m[2] for m in MODELS])
    model_index = rng.choice(len(MODELS), size=rows, p=shares / shares.sum())
    prompts, outputs = trace_tokens(root)
    pick = rng.integers(0, len(prompts), size=rows)
    jitter = rng.lognormal(0.0, 0.3, size=rows)
    prompt = np.maximum(1, (prompts[pick] * jitter).astype(np.int64))
    output = np.maximum(1, (outputs[pick] * rng.lognormal(0.0, 0.3, size=rows)).astype(np.int64))

    cache_share = np.array([m[3] for m in MODELS])[model_index]
    cached_call = rng.random(rows) < cache_share
    cached = np.where(cached_call, (prompt * rng.uniform(0.3, 0.9, size=rows)).astype(np.int64), 0)
    anthropic = np.array([m[0] == "anthropic" for m in MODELS])[model_index]
    # Anthropic writes the prefix on calls that miss the cache.
    write = np.where(anthropic & ~cached_call & (rng.random(rows) < 0.3),
                     (prompt * 0.5).astype(np.int64), 0)
    input_tokens = prompt - cached - write

    batch_share = np.array([m[4] for m in MODELS])[model_index]
    batch = rng.random(rows) < batch_share

    team_index = rng.integers(0, len(TEAMS), size=rows)
    feature_index = team_index * FEATURES_PER_TEAM + rng.integers(0, FEATURES_PER_TEAM, size=rows)
    # Zipf-like customers; 10% of calls are internal (no customer).
    customer = np.minimum(rng.zipf(1.3, size=rows), CUSTOMERS) - 1
    internal = rng.random(rows) < 0.10
    env = rng.choice(len(ENVIRONMENTS[0]), size=rows, p=ENVIRONMENTS[1])
    latency = (300 + output * rng.uniform(5, 20, size=rows)).astype(np.int32)

    # Exact cost per row in 1e-12 USD.
    price_table, cut = price_rows()
    cut_us = int(cut.timestamp()) * 1_000_000
    units = np.zeros(rows, dtype=np.int64)
    for i, (provider, model, _share, _cache, _batch, prices) in enumerate(MODELS):
        for tier_is_batch in (False, True):
            for before_cut in (True, False):
                p = O3_BEFORE if (model == "o3" and before_cut) else prices
                if tier_is_batch:
                    p = tuple(x / 2 for x in p)
                sel = (model_index == i) & (batch == tier_is_batch) & ((ts < cut_us) == before_cut)
                if not sel.any():
                    continue
                n_in, n_cached, n_write, n_out = (nano(x) for x in p)
                units[sel] = (input_tokens[sel] * n_in + cached[sel] * n_cached
                              + write[sel] * n_write + output[sel] * n_out) // 1000
    assert (units >= 0).all()

    names = lambda values, table: np.array(table, dtype=object)[values]
    provider = names(model_index, [m[0] for m in MODELS])
    model = names(model_index, [m[1] for m in MODELS])
    team = names(team_index, TEAMS)
    feature = np.array([f"{TEAMS[t]}-feature-{k}" for t in range(len(TEAMS))
                        for k in range(FEATURES_PER_TEAM)], dtype=object)[feature_index]
    customer_names = np.array([f"customer-{c:05d}" for c in range(CUSTOMERS)], dtype=object)
    customer_col = np.where(internal, None, customer_names[customer])
    environment = names(env, ENVIRONMENTS[0])
    tier = np.where(batch, "batch", "standard").astype(object)
    event_id = np.array([f"bench-{seed}-{i:012d}" for i in range(rows)], dtype=object)
    return {
        "event_id": event_id, "ts": ts, "provider": provider, "model": model,
        "input_tokens": input_tokens, "cached_input_tokens": cached,
        "cache_write_tokens": write, "output_tokens": output,
        "service_tier": tier, "team": team, "feature": feature, "customer": customer_col,
        "environment": environment, "latency_ms": latency,
    }, units


def money(units):
    """1e-12 USD units as a decimal string with 12 decimals."""
    sign = "-" if units < 0 else ""
    units = abs(int(units))
    return f"{sign}{units // 10**12}.{units % 10**12:012d}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", required=True)
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    parser.add_argument("--no-postgres-csv", action="store_true",
                        help="skip the CSV with per-row costs (PostgreSQL's copy; 17 GB at 100M rows)")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)

    chunk = 2_000_000
    schema = pa.schema([
        ("event_id", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
        ("provider", pa.string()), ("model", pa.string()),
        ("input_tokens", pa.int64()), ("cached_input_tokens", pa.int64()),
        ("cache_write_tokens", pa.int64()), ("output_tokens", pa.int64()),
        ("service_tier", pa.string()), ("team", pa.string()), ("feature", pa.string()),
        ("customer", pa.string()), ("environment", pa.string()), ("latency_ms", pa.int32()),
    ])
    writer = pq.ParquetWriter(os.path.join(args.out, "usage.parquet"), schema,
                              compression="zstd")
    total_units = 0
    pg_schema = schema.append(pa.field("cost", pa.string()))
    pg_writer = None if args.no_postgres_csv else pacsv.CSVWriter(
        os.path.join(args.out, "usage_pg.csv"), pg_schema)
    done = 0
    part = 0
    while done < args.rows:
        n = min(chunk, args.rows - done)
        columns, units = generate(n, args.seed * 1000 + part, args.root)
        columns["event_id"] = np.array(
            [f"bench-{args.seed}-{done + i:012d}" for i in range(n)], dtype=object)
        table = pa.table({name: columns[name] for name in schema.names}, schema=schema)
        writer.write_table(table)
        if pg_writer is not None:
            whole = (units // 10**12).astype(str)
            fraction = np.char.zfill((units % 10**12).astype(str), 12)
            cost = np.char.add(np.char.add(whole, "."), fraction)
            pg_writer.write_table(table.append_column("cost", pa.array(cost, pa.string())))
        total_units += int(units.sum())
        done += n
        part += 1
    if pg_writer is not None:
        pg_writer.close()
    writer.close()

    price_table, _cut = price_rows()
    with open(os.path.join(args.out, "prices.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["provider", "model", "effective_from", "effective_to", "service_tier",
                      "region", "min_prompt_tokens", "utc_start_time", "utc_end_time",
                      "input_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok",
                      "cache_write_1h_per_mtok", "output_per_mtok", "per_request", "currency",
                      "source"])
        for provider, model, tier, start_at, end_at, p_in, p_cached, p_write, p_out in price_table:
            out.writerow([provider, model, start_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                          end_at.strftime("%Y-%m-%dT%H:%M:%SZ") if end_at else "", tier, "", 0,
                          "", "", f"{p_in:.6f}", f"{p_cached:.6f}", f"{p_write:.6f}",
                          f"{p_write:.6f}", f"{p_out:.6f}", "", "USD", "benchmark"])
    with open(os.path.join(args.out, "budgets.csv"), "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["budget_id", "team", "amount"])
        scale = args.rows / 10_000_000
        for k, team in enumerate(TEAMS):
            out.writerow([f"budget-{team}", team, f"{(20000 + 5000 * k) * scale:.2f}"])
    with open(os.path.join(args.out, "meta.json"), "w") as f:
        json.dump({"rows": args.rows, "seed": args.seed, "anchor": ANCHOR.isoformat(),
                   "days": DAYS, "total_cost": money(total_units)}, f, indent=2)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Regenerates src/demo/prices.csv from a genai-prices data.json (development time only).

Usage: python3 scripts/extract_demo_prices.py PATH/TO/genai-prices/data.json > src/demo/prices.csv

The demo generator embeds the CSV with include_str!, so nothing outside the crate is read
at run or test time. Prices are copied exactly (as decimal strings); batch rows are the
provider's 50% batch discount applied to every standard price.
"""

import json
import sys
from decimal import Decimal

COMMIT = "47df840a"
SOURCE = f"genai-prices {COMMIT} (MIT)"

# (our provider id, genai provider id, genai model id, our model name)
MODELS = [
    ("openai", "openai", "gpt-4o", "gpt-4o"),
    ("openai", "openai", "gpt-4o-mini", "gpt-4o-mini"),
    ("openai", "openai", "gpt-4.1", "gpt-4.1"),
    ("openai", "openai", "gpt-4.1-mini", "gpt-4.1-mini"),
    ("openai", "openai", "gpt-4.1-nano", "gpt-4.1-nano"),
    ("openai", "openai", "o3-mini", "o3-mini"),
    ("openai", "openai", "o3", "o3"),
    ("anthropic", "anthropic", "claude-3-5-sonnet", "claude-3-5-sonnet"),
    ("anthropic", "anthropic", "claude-sonnet-4-0", "claude-sonnet-4-0"),
    ("anthropic", "anthropic", "claude-3-5-haiku-latest", "claude-3-5-haiku-latest"),
    ("anthropic", "anthropic", "claude-3-haiku", "claude-3-haiku"),
    ("anthropic", "anthropic", "claude-opus-4-0", "claude-opus-4-0"),
    ("google", "google", "gemini-2.0-flash", "gemini-2.0-flash"),
    ("google", "google", "gemini-1.5-pro", "gemini-1.5-pro"),
    ("google", "google", "gemini-2.5-flash", "gemini-2.5-flash"),
    ("google", "google", "gemini-2.5-pro", "gemini-2.5-pro"),
    ("mistral", "mistral", "mistral-large", "mistral-large"),
    ("mistral", "mistral", "mistral-small-latest", "mistral-small-latest"),
    ("mistral", "mistral", "codestral", "codestral"),
    ("deepseek", "deepseek", "deepseek-chat", "deepseek-chat"),
    ("deepseek", "deepseek", "deepseek-reasoner", "deepseek-reasoner"),
    ("aws_bedrock", "aws", "amazon.nova-lite-v1:0", "amazon.nova-lite-v1:0"),
    ("aws_bedrock", "aws", "amazon.nova-pro-v1:0", "amazon.nova-pro-v1:0"),
    ("aws_bedrock", "aws", "meta.llama3-3-70b-instruct-v1:0", "meta.llama3-3-70b-instruct-v1:0"),
    (
        "aws_bedrock",
        "aws",
        "regional.anthropic.claude-3-5-sonnet-20241022-v2:0",
        "anthropic.claude-3-5-sonnet-20241022-v2:0",
    ),
]

# Providers with a batch API at half the standard price.
BATCH = {"openai", "anthropic", "google", "mistral", "aws_bedrock"}

# genai-prices key -> our column
KEYS = [
    ("input_mtok", "input_per_mtok"),
    ("cache_read_mtok", "cached_input_per_mtok"),
    ("cache_write_mtok", "cache_write_per_mtok"),
    ("cache_write_1h_mtok", "cache_write_1h_per_mtok"),
    ("output_mtok", "output_per_mtok"),
]


def dec(value):
    """Exact decimal from a JSON number; tiered prices keep their base (short-prompt) price."""
    if isinstance(value, dict):
        value = value["base"]
    return Decimal(str(value))


def fmt(d):
    if d is None:
        return ""
    s = format(d.normalize(), "f")
    return s


def aliases(model_id, match):
    """Raw names and LIKE patterns that resolve to the model, from genai-prices' match rules."""
    out = []

    def walk(m):
        if "or" in m:
            for x in m["or"]:
                walk(x)
        elif "equals" in m:
            out.append(m["equals"])
        elif "starts_with" in m:
            out.append(m["starts_with"] + "%")
        elif "contains" in m:
            out.append("%" + m["contains"] + "%")
        elif "ends_with" in m:
            out.append("%" + m["ends_with"])

    if match:
        walk(match)
    return ",".join(a for a in out if a != model_id)


def main():
    data = json.load(open(sys.argv[1]))
    providers = {p["id"]: p for p in data}
    w = sys.stdout
    w.write(f"# Demo price catalog extracted from {SOURCE} by scripts/extract_demo_prices.py.\n")
    w.write("# genai-prices is MIT licensed; its licence text is in src/demo/PRICES-LICENSE.\n")
    w.write("# Prices are USD per million tokens. period: always | before_cut | after_cut\n")
    w.write("# (o3's real 2025-06-10 price cut; the demo shifts the cut date to today - 90 days).\n")
    w.write(
        "provider,model,service_tier,period,input_per_mtok,cached_input_per_mtok,"
        "cache_write_per_mtok,cache_write_1h_per_mtok,output_per_mtok,aliases,source\n"
    )
    for ours, gp, gm, name in MODELS:
        model = next(m for m in providers[gp]["models"] if m["id"] == gm)
        prices = model["prices"]
        src = SOURCE if gm == name else f"{SOURCE} id {gm}"
        if gm in ("deepseek-chat", "deepseek-reasoner"):
            # genai-prices lists the off-peak price unconstrained and the peak price for
            # 00:30-16:30 UTC; the demo uses the peak price all day.
            periods = [("always", prices[1]["prices"], src + "; peak price all day")]
        elif isinstance(prices, list):
            # Price history: the first entry has no constraint, the second starts on a date.
            assert len(prices) == 2 and "start_date" in prices[1]["constraint"], gm
            periods = [
                ("before_cut", prices[0]["prices"], src + f"; price before {prices[1]['constraint']['start_date']}"),
                ("after_cut", prices[1]["prices"], src + f"; price from {prices[1]['constraint']['start_date']}"),
            ]
        else:
            periods = [("always", prices, src)]
        alias = aliases(gm, model.get("match"))
        if name != gm:
            alias = ",".join(x for x in [gm, alias] if x)
        for period, p, s in periods:
            cols = {ours_col: (dec(p[k]) if k in p else None) for k, ours_col in KEYS}
            tiers = [("standard", cols, s)]
            if ours in BATCH:
                half = {k: (v / 2 if v is not None else None) for k, v in cols.items()}
                tiers.append(("batch", half, s + "; batch = 50% of standard"))
            for tier, c, note in tiers:
                row = [ours, name, tier, period] + [fmt(c[col]) for _, col in KEYS] + [alias, note]
                w.write(",".join(csv_field(x) for x in row) + "\n")


def csv_field(x):
    if any(ch in x for ch in ',"\n'):
        return '"' + x.replace('"', '""') + '"'
    return x


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Build SpendQL's bundled price catalog (catalog/pricing.csv, catalog/models.csv).

Sources (both MIT, read only here, at development time; SpendQL embeds the CSVs):
  * genai-prices data.json  -> standard prices, price history (start_date), long-context
    tiers ({base, tiers}), time-of-day windows (start_time/end_time), aliases (match rules).
  * LiteLLM model_prices_and_context_window.json -> batch / flex / priority tier rows for
    models already in the standard catalog, context windows genai-prices lacks, and
    deprecation dates.

Usage:
  python3 scripts/build_catalog.py [--genai PATH] [--litellm PATH] [--out catalog]

Conventions of the output (match src/schema.rs):
  * timestamps RFC 3339 UTC (2024-05-13T00:00:00Z); times HH:MM:SS; empty field = NULL;
  * decimals are exact plain strings (JSON parsed with parse_float=Decimal; LiteLLM's
    per-token prices are multiplied by 10^6 and rounded to 9 places);
  * the first price period of every model starts at 2023-01-01T00:00:00Z; a later
    start_date closes the previous period (effective_to) and opens a new one;
  * a long-context tier {start: N} becomes an extra row with min_prompt_tokens = N
    (applies when the prompt of one request exceeds N);
  * a time-of-day entry becomes a row with utc_start_time/utc_end_time; the
    unconstrained entry is the all-day row (NULL times);
  * rows are unique on (provider, model, service_tier, region, min_prompt_tokens,
    utc_start_time, effective_from); the first row produced wins.

Model tier heuristic (models.tier, 1 small ... 4 frontier), first match wins:
  1: a name segment mini / nano / haiku / lite / flash-lite / small / micro / tiny /
     instant, or a parameter count <= 9b (e.g. llama-3.1-8b);
  4: opus, ultra, premier, gpt-4.5, gpt-N-pro, o1 / o3 / o1-pro / o3-pro (not -mini);
  2: flash, medium, turbo, fast, haiku-like mid models;
  3: everything else (gpt-4o, sonnet, gemini-pro, mistral-large, ...).
Family heuristic: a handful of regexes for the big families (claude-sonnet, gpt-4o,
gemini-flash, mistral-large, grok, llama-3.1, ...), else the model name with its date /
version suffix removed.
"""
import argparse
import csv
import json
import os
import re
import sys
from decimal import Decimal

HERE = os.path.dirname(os.path.abspath(__file__))
REF = "/work/shared/reference/pricing"
FIRST_FROM = "2023-01-01T00:00:00Z"

# genai-prices provider id -> SpendQL provider id. Providers not listed are skipped
# (huggingface_* inference routes do not map to a provider SpendQL ingests).
GENAI_PROVIDERS = {
    "openai": "openai",
    "anthropic": "anthropic",
    "google": "google",
    "aws": "aws_bedrock",
    "azure": "azure_openai",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "x-ai": "xai",
    "groq": "groq",
    "together": "together",
    "fireworks": "fireworks",
    "cohere": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshotai": "moonshotai",
    "minimax": "minimax",
    "novita": "novita",
    "ovhcloud": "ovhcloud",
    "voyageai": "voyageai",
    "zai": "zai",
    "zhipuai": "zhipuai",
    "avian": "avian",
    "doubleword": "doubleword",
    "modal": "modal",
}

# LiteLLM litellm_provider -> SpendQL provider id, and key prefixes to strip.
LITELLM_PROVIDERS = {
    "openai": "openai",
    "text-completion-openai": "openai",
    "anthropic": "anthropic",
    "gemini": "google",
    "vertex_ai-language-models": "google",
    "vertex_ai": "google",
    "bedrock": "aws_bedrock",
    "bedrock_converse": "aws_bedrock",
    "azure": "azure_openai",
    "mistral": "mistral",
    "deepseek": "deepseek",
    "xai": "xai",
    "groq": "groq",
    "together_ai": "together",
    "fireworks_ai": "fireworks",
    "cohere": "cohere",
    "cohere_chat": "cohere",
    "perplexity": "perplexity",
    "openrouter": "openrouter",
    "cerebras": "cerebras",
    "moonshot": "moonshotai",
    "novita": "novita",
    "ovhcloud": "ovhcloud",
    "voyage": "voyageai",
    "zai": "zai",
}
LITELLM_PREFIXES = {
    "gemini", "vertex_ai", "bedrock", "azure", "mistral", "deepseek", "xai", "groq",
    "together_ai", "fireworks_ai", "cohere", "cohere_chat", "perplexity", "openrouter",
    "cerebras", "moonshot", "novita", "ovhcloud", "voyage", "zai", "openai", "anthropic",
    "fireworks_ai/accounts/fireworks/models",
}
LITELLM_TIERS = {"batches": "batch", "flex": "flex", "priority": "priority"}

PRICING_COLUMNS = [
    "provider", "model", "effective_from", "effective_to", "service_tier", "region",
    "min_prompt_tokens", "utc_start_time", "utc_end_time", "input_per_mtok",
    "cached_input_per_mtok", "cache_write_per_mtok", "cache_write_1h_per_mtok",
    "output_per_mtok", "per_request", "currency", "source",
]
MODELS_COLUMNS = [
    "provider", "model", "family", "tier", "context_window", "deprecated_on", "aliases",
]
# genai-prices price field -> pricing column.
GENAI_FIELDS = {
    "input_mtok": "input_per_mtok",
    "cache_read_mtok": "cached_input_per_mtok",
    "cache_write_mtok": "cache_write_per_mtok",
    "cache_write_1h_mtok": "cache_write_1h_per_mtok",
    "output_mtok": "output_per_mtok",
}
# LiteLLM per-token field stem -> pricing column.
LITELLM_FIELDS = {
    "input_cost_per_token": "input_per_mtok",
    "cache_read_input_token_cost": "cached_input_per_mtok",
    "cache_creation_input_token_cost": "cache_write_per_mtok",
    "output_cost_per_token": "output_per_mtok",
}
PRICE_COLUMNS = [
    "input_per_mtok", "cached_input_per_mtok", "cache_write_per_mtok",
    "cache_write_1h_per_mtok", "output_per_mtok", "per_request",
]
NINE = Decimal("0.000000001")


def dec(d):
    """Exact plain decimal text (no exponent, no trailing zeros), rounded to the 9 places
    of DECIMAL(20,9) (a few genai-prices values such as 0.08333333333333334 have more)."""
    if d is None:
        return ""
    d = Decimal(d).quantize(NINE)
    if d == d.to_integral_value():
        return str(d.quantize(Decimal(1)))
    return format(d.normalize(), "f")


def first_line(path):
    with open(path) as f:
        return f.readline().strip()


def source_tag(genai_dir):
    m = re.search(r"commit ([0-9a-f]+)", first_line(os.path.join(genai_dir, "SOURCE")))
    return f"genai-prices {m.group(1) if m else 'unknown'} (MIT)"


# ---------------------------------------------------------------- genai-prices


def match_rule(rule, name):
    """Evaluate a genai-prices match rule against a model name."""
    if "or" in rule:
        return any(match_rule(r, name) for r in rule["or"])
    if "and" in rule:
        return all(match_rule(r, name) for r in rule["and"])
    if "equals" in rule:
        return name == rule["equals"]
    if "starts_with" in rule:
        return name.startswith(rule["starts_with"])
    if "ends_with" in rule:
        return name.endswith(rule["ends_with"])
    if "contains" in rule:
        return rule["contains"] in name
    if "regex" in rule:
        return re.search(rule["regex"], name) is not None
    return False


def aliases_of(model):
    """equals -> exact name; starts_with -> 'name%'; contains -> '%name%'.

    Rules with and / regex / ends_with, or names containing ',' or '%', are skipped.
    """
    out = []

    def walk(rule):
        if "or" in rule:
            for r in rule["or"]:
                walk(r)
            return
        for key, fmt in (("equals", "{}"), ("starts_with", "{}%"), ("contains", "%{}%")):
            if key in rule:
                v = rule[key]
                if "," in v or "%" in v:
                    return
                alias = fmt.format(v)
                if alias != model["id"] and alias not in out:
                    out.append(alias)

    walk(model["match"])
    return ",".join(out)


def price_value(v, start=None):
    """The price of one field for prompts above `start` (None = base)."""
    if isinstance(v, dict):
        price = v.get("base")
        if start is not None:
            for t in sorted(v.get("tiers", []), key=lambda t: t["start"]):
                if t["start"] <= start:
                    price = t["price"]
        return price
    return v


def rows_for_prices(prices, start):
    """Base row values and one row per long-context tier start."""
    starts = sorted({int(t["start"]) for v in prices.values() if isinstance(v, dict)
                     for t in v.get("tiers", [])})
    out = []
    for min_prompt in [None] + starts:
        vals = {col: price_value(prices[f], min_prompt)
                for f, col in GENAI_FIELDS.items() if f in prices}
        if "requests_kcount" in prices:
            vals["per_request"] = Decimal(price_value(prices["requests_kcount"],
                                                      min_prompt)) / 1000
        out.append((min_prompt or 0, vals))
    return out


def genai_rows(data, src):
    pricing, models = [], []
    for prov in data:
        provider = GENAI_PROVIDERS.get(prov["id"])
        if provider is None:
            continue
        for m in prov["models"]:
            entries = m["prices"]
            if isinstance(entries, dict):
                entries = [{"prices": entries}]
            dated = [e for e in entries if "start_date" in (e.get("constraint") or {})]
            base = [e for e in entries if not e.get("constraint")]
            windows = [e for e in entries
                       if "start_time" in (e.get("constraint") or {})]
            dated.sort(key=lambda e: e["constraint"]["start_date"])
            periods = []  # (from, to, entry)
            starts = [FIRST_FROM if not base else FIRST_FROM] + [
                e["constraint"]["start_date"] + "T00:00:00Z" for e in dated]
            chain = base[:1] + dated if base else dated
            if not base and dated:
                starts = [FIRST_FROM] + starts[2:]
            for i, e in enumerate(chain):
                to = starts[i + 1] if i + 1 < len(chain) else ""
                periods.append((starts[i], to, e, None))
            for w in windows:
                c = w["constraint"]
                win = (c["start_time"].rstrip("Z")[:8], c["end_time"].rstrip("Z")[:8])
                periods.append((FIRST_FROM, "", w, win))
            emitted = False
            for eff_from, eff_to, entry, win in periods:
                for min_prompt, vals in rows_for_prices(entry["prices"], None):
                    if not any(vals.get(c) is not None for c in PRICE_COLUMNS):
                        continue
                    row = {c: "" for c in PRICING_COLUMNS}
                    row.update(provider=provider, model=m["id"], effective_from=eff_from,
                               effective_to=eff_to, service_tier="standard",
                               min_prompt_tokens=str(min_prompt), currency="USD",
                               source=src)
                    if win:
                        row["utc_start_time"], row["utc_end_time"] = win
                    for c in PRICE_COLUMNS:
                        row[c] = dec(vals.get(c))
                    pricing.append(row)
                    emitted = True
            if emitted:
                models.append({
                    "provider": provider, "model": m["id"], "family": family(m["id"]),
                    "tier": str(tier(m["id"])),
                    "context_window": str(m.get("context_window") or ""),
                    "deprecated_on": "", "aliases": aliases_of(m), "_match": m["match"],
                })
    return pricing, models


# ---------------------------------------------------------------- LiteLLM


def litellm_name(key, lprov):
    """The bare model name of a LiteLLM key, or None when it is region/route specific."""
    name = key
    for p in sorted(LITELLM_PREFIXES, key=len, reverse=True):
        if name.startswith(p + "/"):
            name = name[len(p) + 1:]
            break
    if lprov.startswith("bedrock") and "/" in name:
        return None  # region- or commitment-specific Bedrock keys
    if lprov == "azure" and "/" in name:
        return None  # azure/eu/..., azure/global/... deployment types
    return name


def per_mtok(v):
    return (Decimal(v) * 1_000_000).quantize(NINE)


def litellm_rows(data, models, standard_from):
    """Tier rows for models in the standard catalog; fills context windows/deprecations."""
    index = {}
    for m in models:
        index.setdefault(m["provider"], []).append(m)
    pricing = []
    resolved = []
    for key, v in data.items():
        if not isinstance(v, dict):
            continue
        provider = LITELLM_PROVIDERS.get(v.get("litellm_provider"))
        if provider is None or provider not in index:
            continue
        name = litellm_name(key, v["litellm_provider"])
        if not name:
            continue
        exact = next((m for m in index[provider] if m["model"] == name), None)
        target = exact or next((m for m in index[provider]
                                if match_rule(m["_match"], name)), None)
        if target is None:
            continue
        resolved.append((0 if exact else 1, key, target, v))
    resolved.sort(key=lambda r: (r[0], r[1]))
    for _, key, m, v in resolved:
        if not m["context_window"] and isinstance(v.get("max_input_tokens"), (int, Decimal)):
            m["context_window"] = str(int(v["max_input_tokens"]))
        dep = v.get("deprecation_date")
        if not m["deprecated_on"] and isinstance(dep, str) and re.fullmatch(
                r"\d{4}-\d{2}-\d{2}", dep):
            m["deprecated_on"] = dep
        for suffix, tier_name in LITELLM_TIERS.items():
            thresholds = {0}
            for k in v:
                t = re.fullmatch(r".*_above_(\d+)k_tokens_" + suffix, k)
                if t:
                    thresholds.add(int(t.group(1)) * 1000)
            for th in sorted(thresholds):
                mid = f"_above_{th // 1000}k_tokens" if th else ""
                vals = {}
                for stem, col in LITELLM_FIELDS.items():
                    x = v.get(f"{stem}{mid}_{suffix}")
                    if isinstance(x, (int, Decimal)):
                        vals[col] = per_mtok(x)
                if "input_per_mtok" not in vals or "output_per_mtok" not in vals:
                    continue
                row = {c: "" for c in PRICING_COLUMNS}
                row.update(provider=m["provider"], model=m["model"],
                           effective_from=standard_from.get(
                               (m["provider"], m["model"]), FIRST_FROM),
                           service_tier=tier_name, min_prompt_tokens=str(th),
                           currency="USD", source="litellm (MIT)")
                for c in PRICE_COLUMNS:
                    row[c] = dec(vals.get(c))
                pricing.append(row)
    return pricing


# ---------------------------------------------------------------- heuristics

FAMILY_RULES = [
    (r"claude-(?:[\d.-]+-)?(opus|sonnet|haiku)", lambda m: "claude-" + m.group(1)),
    (r"claude-(opus|sonnet|haiku)", lambda m: "claude-" + m.group(1)),
    (r"claude", lambda m: "claude"),
    (r"gpt-4o-mini", lambda m: "gpt-4o-mini"),
    (r"gpt-4o", lambda m: "gpt-4o"),
    (r"gpt-(\d+(?:\.\d+)?)(?:-(mini|nano|pro|turbo|codex))?",
     lambda m: "gpt-" + m.group(1) + ("-" + m.group(2) if m.group(2) else "")),
    (r"(?:^|[/.])(o\d)(?:-(mini|pro))?(?:$|-)",
     lambda m: m.group(1) + ("-" + m.group(2) if m.group(2) else "")),
    (r"gemini-[\d.]+-(flash-lite|flash|pro|ultra)", lambda m: "gemini-" + m.group(1)),
    (r"gemini-(flash-lite|flash|pro|ultra)", lambda m: "gemini-" + m.group(1)),
    (r"gemma", lambda m: "gemma"),
    (r"(mistral-(?:large|medium|small|tiny|nemo|saba)|codestral|ministral|magistral"
     r"|devstral|pixtral|mixtral)", lambda m: m.group(1)),
    (r"deepseek-(chat|reasoner|v\d|r\d|coder)", lambda m: "deepseek-" + m.group(1)),
    (r"grok-(?:[\d.]+-)?(code|mini|fast|vision)?", lambda m: "grok" + (
        "-" + m.group(1) if m.group(1) else "")),
    (r"llama-?(\d(?:\.\d)?)", lambda m: "llama-" + m.group(1)),
    (r"qwen-?(\d(?:\.\d)?)?", lambda m: "qwen" + (m.group(1) or "")),
    (r"(command-[a-z]+)", lambda m: m.group(1)),
    (r"nova-(micro|lite|pro|premier)", lambda m: "nova-" + m.group(1)),
]


def family(model):
    name = model.lower()
    for pat, f in FAMILY_RULES:
        m = re.search(pat, name)
        if m:
            return f(m)
    base = name.rsplit("/", 1)[-1]
    base = re.sub(r"[:@].*$", "", base)
    base = re.sub(r"-\d{4}-?\d{2}-?\d{2}.*$", "", base)
    base = re.sub(r"-(v\d.*|\d{3,}.*|latest|preview.*)$", "", base)
    return base


SEG = r"(?:^|[-_./:])"
END = r"(?:$|[-_./:])"


def tier(model):
    n = model.lower()
    if re.search(SEG + r"(mini|nano|haiku|lite|flash-lite|small|micro|tiny|instant)" + END, n):
        return 1
    if re.search(SEG + r"(ministral)", n):
        return 1
    b = re.search(r"(\d+(?:\.\d+)?)b" + END, n)
    if b and Decimal(b.group(1)) <= 9:
        return 1
    if re.search(r"opus|ultra|premier|gpt-4\.5|gpt-\d(?:\.\d)?-pro" + END + "|" + SEG
                 + r"o[13](?:-pro)?" + END, n):
        return 4
    if re.search(SEG + r"(flash|medium|turbo|fast)" + END, n):
        return 2
    return 3


# ---------------------------------------------------------------- main


def dedup(rows):
    seen, out = set(), []
    for r in rows:
        key = (r["provider"], r["model"], r["service_tier"], r["region"],
               r["min_prompt_tokens"], r["utc_start_time"], r["effective_from"])
        if key not in seen:
            seen.add(key)
            out.append(r)
    return out


def write_csv(path, columns, rows):
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore",
                           lineterminator="\n")
        w.writeheader()
        w.writerows(rows)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--genai", default=os.path.join(REF, "genai-prices"))
    ap.add_argument("--litellm", default=os.path.join(REF, "litellm"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "catalog"))
    a = ap.parse_args()
    with open(os.path.join(a.genai, "data.json")) as f:
        genai = json.load(f, parse_float=Decimal, parse_int=Decimal)
    with open(os.path.join(a.litellm, "model_prices_and_context_window.json")) as f:
        litellm = json.load(f, parse_float=Decimal, parse_int=Decimal)
    std, models = genai_rows(genai, source_tag(a.genai))
    # LiteLLM only knows current prices: its tier rows start with the latest standard period.
    first_from = {}
    for r in std:
        k = (r["provider"], r["model"])
        first_from[k] = max(first_from.get(k, r["effective_from"]), r["effective_from"])
    tiers = litellm_rows(litellm, models, first_from)
    rows = dedup(std + tiers)
    rows.sort(key=lambda r: (r["provider"], r["model"], r["service_tier"],
                             int(r["min_prompt_tokens"]), r["utc_start_time"],
                             r["effective_from"]))
    models = dedup_models(models)
    os.makedirs(a.out, exist_ok=True)
    write_csv(os.path.join(a.out, "pricing.csv"), PRICING_COLUMNS, rows)
    write_csv(os.path.join(a.out, "models.csv"), MODELS_COLUMNS, models)
    counts = {}
    for r in rows:
        counts[r["provider"]] = counts.get(r["provider"], 0) + 1
    print(f"pricing.csv: {len(rows)} rows; models.csv: {len(models)} rows", file=sys.stderr)
    for p, n in sorted(counts.items()):
        print(f"  {p}: {n}", file=sys.stderr)


def dedup_models(models):
    seen, out = set(), []
    for m in models:
        if (m["provider"], m["model"]) not in seen:
            seen.add((m["provider"], m["model"]))
            out.append(m)
    out.sort(key=lambda m: (m["provider"], m["model"]))
    return out


if __name__ == "__main__":
    main()

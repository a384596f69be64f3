#!/usr/bin/env python3
"""Independent oracle for the provider-ingestion fixtures in this directory.

Reads the fixtures with nothing but the Python 3 standard library, applies the
SpendQL normalisation rules (see README.md), checks that the fixtures are
internally consistent, and writes:

  expected.csv           per (file, provider, model) usage totals, each file alone
  expected-combined.csv  totals after ingesting overlapping files together (dedupe)
  costs-expected.csv     one line per cost-report result

Usage (from the repository root):
  python3 testdata/providers/expected.py           # (re)write the three CSVs
  python3 testdata/providers/expected.py --check   # exit 1 if they are stale
  python3 testdata/providers/expected.py --stdout  # print expected.csv only

This file deliberately shares no code with SpendQL.
"""
import csv
import io
import json
import os
import sys
from datetime import datetime, timezone
from decimal import Decimal, ROUND_HALF_EVEN

HERE = os.path.dirname(os.path.abspath(__file__))
Q12 = Decimal("0.000000000001")

HEADER = ["file", "provider", "model", "rows", "input_tokens", "cached_input_tokens",
          "cache_write_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens",
          "requests", "reported_cost"]
TOKEN_FIELDS = HEADER[4:11]


def path(name):
    return os.path.join(HERE, name)


def load_json(name):
    # parse_float=Decimal keeps the exact decimal text of every JSON number.
    with open(path(name), encoding="utf-8") as f:
        return json.load(f, parse_float=Decimal)


def load_jsonl(name):
    out = []
    with open(path(name), encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if line.strip():
                try:
                    out.append(json.loads(line, parse_float=Decimal))
                except json.JSONDecodeError as e:
                    raise ValueError("%s line %d: %s" % (name, lineno, e))
    return out


def n(v):
    """A token count: missing/null -> 0, must be a non-negative int."""
    if v is None:
        return 0
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("not an integer count: %r" % (v,))
    if v < 0:
        raise ValueError("negative count: %r" % (v,))
    return v


def dec(v):
    if isinstance(v, bool):
        raise ValueError("bad decimal %r" % (v,))
    if isinstance(v, (int, Decimal)):
        return Decimal(v)
    if isinstance(v, str):
        return Decimal(v)
    raise ValueError("bad decimal %r" % (v,))


def fmt12(d):
    return format(d.quantize(Q12, rounding=ROUND_HALF_EVEN), "f")


def rec(provider, model, inp=0, cached=0, cw=0, cw1h=0, out=0, reasoning=0, requests=0, cost=None):
    for k, v in (("input", inp), ("cached", cached), ("cache_write", cw), ("cache_write_1h", cw1h),
                 ("output", out), ("reasoning", reasoning), ("requests", requests)):
        if not isinstance(v, int) or v < 0:
            raise ValueError("%s/%s: %s = %r" % (provider, model, k, v))
    return {"provider": provider, "model": model, "input_tokens": inp, "cached_input_tokens": cached,
            "cache_write_tokens": cw, "cache_write_1h_tokens": cw1h, "output_tokens": out,
            "reasoning_tokens": reasoning, "requests": requests, "reported_cost": cost}


# ---------------------------------------------------------------- provider ids

OTEL_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "gcp.gemini": "google",
                  "gcp.gen_ai": "google", "gcp.vertex_ai": "google", "aws.bedrock": "aws_bedrock",
                  "azure.ai.openai": "azure_openai", "mistral_ai": "mistral", "x_ai": "xai"}
LITELLM_PROVIDERS = {"openai": "openai", "anthropic": "anthropic", "vertex_ai": "google",
                     "gemini": "google", "bedrock": "aws_bedrock", "azure": "azure_openai"}


def otel_provider(name):
    return OTEL_PROVIDERS.get(name, name.lower().replace(".", "_"))


def litellm_provider(name):
    return LITELLM_PROVIDERS[name]


# ---------------------------------------------------------------- OpenAI

def openai_bucket_rows(bucket):
    assert bucket["object"] == "bucket"
    assert isinstance(bucket["start_time"], int) and isinstance(bucket["end_time"], int)
    for r in bucket["results"]:
        assert r["object"] == "organization.usage.completions.result"
        inp, cached = n(r["input_tokens"]), n(r["input_cached_tokens"])
        if cached > inp:
            raise ValueError("input_cached_tokens %d > input_tokens %d" % (cached, inp))
        key = (bucket["start_time"], bucket["end_time"], r.get("project_id"), r.get("user_id"),
               r.get("api_key_id"), r.get("model"), r.get("batch"), r.get("service_tier"))
        yield key, rec("openai", r["model"], inp=inp - cached, cached=cached, out=n(r["output_tokens"]),
                       requests=n(r["num_model_requests"]))


def openai_pages(name):
    pages = load_jsonl(name) if name.endswith(".jsonl") else [load_json(name)]
    for p in pages:
        assert p["object"] == "page" and isinstance(p["has_more"], bool)
        for b in p["data"]:
            yield b


def openai_usage(name):
    return [row for b in openai_pages(name) for row in openai_bucket_rows(b)]


# ---------------------------------------------------------------- Anthropic

ANTHROPIC_TIERS = {"standard", "batch", "priority", "priority_on_demand", "flex", "flex_discount"}


def anthropic_usage(name):
    page = load_json(name)
    out = []
    for b in page["data"]:
        for t in (b["starting_at"], b["ending_at"]):
            datetime.strptime(t, "%Y-%m-%dT%H:%M:%SZ")
        for r in b["results"]:
            if r.get("service_tier") is not None and r["service_tier"] not in ANTHROPIC_TIERS:
                raise ValueError("unknown service_tier %r" % r["service_tier"])
            cc = r.get("cache_creation") or {}
            key = (b["starting_at"], b["ending_at"], r.get("api_key_id"), r.get("workspace_id"), r.get("model"),
                   r.get("service_tier"), r.get("context_window"))
            out.append((key, rec("anthropic", r["model"], inp=n(r["uncached_input_tokens"]),
                                 cached=n(r.get("cache_read_input_tokens")),
                                 cw=n(cc.get("ephemeral_5m_input_tokens")),
                                 cw1h=n(cc.get("ephemeral_1h_input_tokens")),
                                 out=n(r["output_tokens"]),
                                 # No request count in the report: 0, except a 200k-1M
                                 # bucket, which had at least one (long-context) request.
                                 requests=1 if r.get("context_window") == "200k-1M" else 0)))
    return out


# ---------------------------------------------------------------- Gemini

def gemini(name):
    out = []
    for obj in load_jsonl(name):
        resp = obj["response"] if "response" in obj and "usageMetadata" not in obj else obj
        um = resp["usageMetadata"]
        prompt, cand = n(um.get("promptTokenCount")), n(um.get("candidatesTokenCount"))
        cached, thoughts = n(um.get("cachedContentTokenCount")), n(um.get("thoughtsTokenCount"))
        tool = n(um.get("toolUsePromptTokenCount"))
        if n(um["totalTokenCount"]) != prompt + cand + thoughts + tool:
            raise ValueError("%s: totalTokenCount mismatch in %s" % (name, resp.get("responseId")))
        if cached > prompt:
            raise ValueError("cachedContentTokenCount > promptTokenCount")
        for d in um.get("promptTokensDetails", []):
            assert d["tokenCount"] == prompt
        out.append((resp["responseId"], rec("google", resp["modelVersion"], inp=prompt - cached + tool,
                                            cached=cached, out=cand + thoughts, reasoning=thoughts,
                                            requests=1)))
    return out


# ---------------------------------------------------------------- OpenTelemetry

def attr_value(v):
    (kind, val), = v.items()
    if kind == "intValue":  # OTLP/JSON encodes int64 as a decimal string; accept a number too
        if isinstance(val, bool):
            raise ValueError("bad intValue")
        return int(val)
    if kind in ("stringValue", "boolValue", "doubleValue"):
        return val
    return val  # arrayValue / kvlistValue / bytesValue: not used by the rules


def usage_int(attrs, key):
    if key not in attrs:
        return 0
    v = attrs[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError("%s is not an integer: %r" % (key, v))
    return n(v)


def otel(name):
    out = []
    for req in load_jsonl(name):
        for rs in req["resourceSpans"]:
            for ss in rs["scopeSpans"]:
                for sp in ss["spans"]:
                    assert len(sp["traceId"]) == 32 and len(sp["spanId"]) == 16
                    assert isinstance(sp["startTimeUnixNano"], str) and isinstance(sp["endTimeUnixNano"], str)
                    assert int(sp["endTimeUnixNano"]) >= int(sp["startTimeUnixNano"])
                    attrs = {a["key"]: attr_value(a["value"]) for a in sp.get("attributes", [])}
                    if "gen_ai.usage.input_tokens" not in attrs and "gen_ai.usage.output_tokens" not in attrs:
                        continue  # not a GenAI usage span
                    prov = attrs.get("gen_ai.provider.name", attrs.get("gen_ai.system"))
                    model = attrs.get("gen_ai.response.model") or attrs.get("gen_ai.request.model")
                    inp = usage_int(attrs, "gen_ai.usage.input_tokens")
                    outp = usage_int(attrs, "gen_ai.usage.output_tokens")
                    cr = usage_int(attrs, "gen_ai.usage.cache_read.input_tokens")
                    cc = usage_int(attrs, "gen_ai.usage.cache_creation.input_tokens")
                    rs_ = usage_int(attrs, "gen_ai.usage.reasoning.output_tokens")
                    if cr + cc > inp or rs_ > outp:
                        raise ValueError("cache/reasoning exceed totals in span %s" % sp["spanId"])
                    out.append(((sp["traceId"], sp["spanId"]),
                                rec(otel_provider(prov), model, inp=inp - cr - cc, cached=cr, cw=cc,
                                    out=outp, reasoning=rs_, requests=1)))
    return out


# ---------------------------------------------------------------- LiteLLM

def litellm_row(r, from_csv):
    md = json.loads(r["metadata"], parse_float=Decimal) if from_csv else r["metadata"]
    tags = json.loads(r["request_tags"]) if from_csv else r["request_tags"]
    assert isinstance(tags, list) and isinstance(md, dict)
    assert md.get("user_api_key_team_alias")
    intval = (lambda s: int(s)) if from_csv else n
    prompt, completion = intval(r["prompt_tokens"]), intval(r["completion_tokens"])
    assert intval(r["total_tokens"]) == prompt + completion
    uo = md.get("usage_object") or {}
    assert uo.get("prompt_tokens") == prompt and uo.get("completion_tokens") == completion
    spend = dec(r["spend"])
    hit = r.get("cache_hit")
    hit = hit is True or (isinstance(hit, str) and hit.lower() == "true")
    prov = litellm_provider(r["custom_llm_provider"])
    if hit:
        return r["request_id"], rec(prov, r["model"], requests=1, cost=spend)
    if uo.get("cache_read_input_tokens") is not None:
        cached = n(uo["cache_read_input_tokens"])
    else:
        cached = n((uo.get("prompt_tokens_details") or {}).get("cached_tokens"))
    cw = n(uo.get("cache_creation_input_tokens"))
    reasoning = n((uo.get("completion_tokens_details") or {}).get("reasoning_tokens"))
    if cached + cw > prompt or reasoning > completion:
        raise ValueError("litellm %s: cache/reasoning exceed totals" % r["request_id"])
    return r["request_id"], rec(prov, r["model"], inp=prompt - cached - cw, cached=cached, cw=cw,
                                out=completion, reasoning=reasoning, requests=1, cost=spend)


def litellm_csv(name):
    with open(path(name), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        datetime.strptime(r["startTime"], "%Y-%m-%d %H:%M:%S.%f")
    return [litellm_row(r, True) for r in rows]


def litellm_json(name):
    rows = load_json(name)
    assert isinstance(rows, list)
    for r in rows:
        datetime.strptime(r["startTime"], "%Y-%m-%dT%H:%M:%S.%fZ")
    return [litellm_row(r, False) for r in rows]


# ---------------------------------------------------------------- aggregation

USAGE_FILES = [
    ("openai-usage.json", openai_usage),
    ("openai-usage-overlap.jsonl", openai_usage),
    ("anthropic-usage.json", anthropic_usage),
    ("gemini.jsonl", gemini),
    ("otel-genai.jsonl", otel),
    ("litellm.csv", litellm_csv),
    ("litellm.json", litellm_json),
]
COMBINED = [
    ("openai-usage.json+openai-usage-overlap.jsonl", ["openai-usage.json", "openai-usage-overlap.jsonl"]),
    ("litellm.csv+litellm.json", ["litellm.csv", "litellm.json"]),
]


def aggregate(label, keyed_rows, dedupe=False):
    seen, groups = set(), {}
    for key, r in keyed_rows:
        if dedupe:
            if key in seen:
                continue
            seen.add(key)
        g = groups.setdefault((r["provider"], r["model"]),
                              dict({f: 0 for f in TOKEN_FIELDS}, rows=0, cost=None))
        g["rows"] += 1
        for f in TOKEN_FIELDS:
            g[f] += r[f]
        if r["reported_cost"] is not None:
            g["cost"] = (g["cost"] or Decimal(0)) + r["reported_cost"]
    lines = []
    for (prov, model), g in sorted(groups.items()):
        lines.append([label, prov, model, g["rows"]] + [g[f] for f in TOKEN_FIELDS]
                     + ["" if g["cost"] is None else fmt12(g["cost"])])
    return lines


def to_csv(header, lines):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(lines)
    return buf.getvalue()


def usage_csv():
    lines = []
    for name, fn in USAGE_FILES:
        lines += aggregate(name, fn(name))
    return to_csv(HEADER, lines)


def combined_csv():
    fns = dict(USAGE_FILES)
    lines = []
    for label, names in COMBINED:
        rows = [kr for nm in names for kr in fns[nm](nm)]
        lines += aggregate(label, rows, dedupe=True)
    return to_csv(HEADER, lines)


def costs_csv():
    lines = []
    name = "openai-costs.json"
    page = load_json(name)
    assert page["object"] == "page"
    for b in page["data"]:
        day = datetime.fromtimestamp(b["start_time"], tz=timezone.utc).strftime("%Y-%m-%d")
        for r in b["results"]:
            assert r["object"] == "organization.costs.result" and r["amount"]["currency"] == "usd"
            lines.append([name, "openai", day, r.get("project_id") or "", r.get("line_item") or "",
                          fmt12(dec(r["amount"]["value"]))])
    name = "anthropic-costs.json"
    page = load_json(name)
    for b in page["data"]:
        day = datetime.strptime(b["starting_at"], "%Y-%m-%dT%H:%M:%SZ").strftime("%Y-%m-%d")
        for r in b["results"]:
            assert r["currency"] == "USD" and isinstance(r["amount"], str)
            if r.get("description"):
                item = r["description"]
            else:
                item = r["cost_type"] + (":" + r["token_type"] if r.get("token_type") else "")
            lines.append([name, "anthropic", day, r.get("workspace_id") or "", item,
                          fmt12(Decimal(r["amount"]) / 100)])
    return to_csv(["file", "provider", "day", "project", "line_item", "amount_usd"], lines)


# ---------------------------------------------------------------- bad fixtures must fail

BAD = [
    ("bad/openai-usage-negative.json", openai_usage, "input_cached_tokens"),
    ("bad/anthropic-usage-badtier.json", anthropic_usage, "service_tier"),
    ("bad/gemini-badjson.jsonl", gemini, "line 2"),
    ("bad/otel-wrongtype.jsonl", otel, "gen_ai.usage.output_tokens"),
]


def check_bad():
    for name, fn, needle in BAD:
        try:
            fn(name)
        except ValueError as e:
            if needle not in str(e):
                raise SystemExit("%s failed for the wrong reason: %s" % (name, e))
        else:
            raise SystemExit("%s unexpectedly parsed" % name)


def main(argv):
    check_bad()
    outputs = {"expected.csv": usage_csv(), "expected-combined.csv": combined_csv(),
               "costs-expected.csv": costs_csv()}
    if "--stdout" in argv:
        sys.stdout.write(outputs["expected.csv"])
        return 0
    if "--check" in argv:
        stale = []
        for fname, text in outputs.items():
            try:
                with open(path(fname), encoding="utf-8") as f:
                    if f.read() != text:
                        stale.append(fname)
            except FileNotFoundError:
                stale.append(fname)
        if stale:
            print("stale: " + ", ".join(stale), file=sys.stderr)
            return 1
        return 0
    for fname, text in outputs.items():
        with open(path(fname), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

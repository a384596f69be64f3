#!/usr/bin/env python3
"""Build the forecasting and anomaly evaluation fixtures.

Run from the repository root (or anywhere; paths are relative to this file):

    python3 testdata/forecast/make_fixtures.py

Writes
    testdata/forecast/series.csv             series_id,ts,value (full series: history + held-back tail)
    testdata/forecast/meta.csv               series_id,source,licence,frequency,season,horizon,history_points
    testdata/forecast/reference.csv          series_id,step,actual,holt_winters,seasonal_naive
    testdata/forecast/reference_summary.csv  series_id,smape_holt_winters,smape_seasonal_naive
    testdata/forecast/reference_rolling.csv  series_id,origin,history_points,smape_holt_winters,smape_seasonal_naive
    testdata/anomaly/series.csv              series_id,day,value
    testdata/anomaly/events.csv              series_id,kind,day,magnitude
    testdata/anomaly/meta.csv                series_id,base,weekend_ratio,noise,has_events

Inputs: the statsmodels-shipped datasets co2, elnino and macrodata (no download), and the
two Azure LLM inference 2023 traces in testdata/traces/. Everything synthetic is drawn from
numpy generators seeded per series, so the output is byte-identical on every run (given the
same numpy/pandas/statsmodels versions; the reference forecasts are rounded to 6 significant
digits, which absorbs last-bit differences between platforms in nearly every case).
"""

import csv
import io
import math
import os
import sys
import warnings

import numpy as np
import pandas as pd
import statsmodels
import statsmodels.datasets as smd
from statsmodels.tools.sm_exceptions import ConvergenceWarning
from statsmodels.tsa.holtwinters import ExponentialSmoothing

HERE = os.path.dirname(os.path.abspath(__file__))
TESTDATA = os.path.dirname(HERE)
FORECAST_DIR = HERE
ANOMALY_DIR = os.path.join(TESTDATA, "anomaly")
TRACES_DIR = os.path.join(TESTDATA, "traces")

SEED = 20240101  # every synthetic series uses default_rng([SEED, stream, index])

PROJECT_LICENCE = "Apache-2.0"


# --------------------------------------------------------------------------- formatting

def fmt6(x):
    """A plain decimal with at most 6 significant digits; integers printed exactly."""
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"non-finite value {x}")
    if x == 0:
        return "0"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    return np.format_float_positional(x, precision=6, unique=True, fractional=False, trim="-")


def fmt_cents(x):
    x = round(float(x), 2)
    if x == 0:
        return "0.00"
    return f"{x:.2f}"


def ts_iso(t):
    return pd.Timestamp(t).strftime("%Y-%m-%dT%H:%M:%SZ")


def write_csv(path, header, rows):
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    w.writerows(rows)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())


# --------------------------------------------------------------------------- series registry

class Series:
    def __init__(self, sid, source, licence, frequency, season, horizon, index, values, money=False):
        assert frequency in ("10s", "minute", "hour", "day", "week", "month", "quarter"), frequency
        assert len(index) == len(values)
        self.sid = sid
        self.source = source
        self.licence = licence
        self.frequency = frequency
        self.season = int(season)
        self.horizon = int(horizon)
        self.index = pd.DatetimeIndex(index)
        fmt = fmt_cents if money else fmt6
        # The text written to series.csv is the truth: everything downstream uses the
        # values parsed back from it, so a consumer reading the CSV gets the same numbers.
        self.text = [fmt(v) for v in values]
        self.values = np.array([float(s) for s in self.text])
        assert self.horizon < len(self.values)
        if self.season:
            assert len(self.values) - self.horizon >= 2 * self.season, sid


def add_statsmodels(out):
    # co2: weekly Mauna Loa (Saturdays), 59 NaNs filled by linear interpolation.
    co2 = smd.co2.load_pandas().data["co2"].interpolate(method="linear")
    co2.index = pd.DatetimeIndex(co2.index)
    # Monthly means; March 1958 holds a single week, so start in April 1958.
    monthly = co2.resample("MS").mean()
    monthly = monthly[monthly.index >= "1958-04-01"]
    out.append(Series("sm_co2_monthly", "statsmodels.datasets.co2", "public-domain", "month", 12, 24,
                      monthly.index, monthly.values))
    weekly = co2.iloc[-312:]  # the last six years, 1996-01-13 .. 2001-12-29
    out.append(Series("sm_co2_weekly", "statsmodels.datasets.co2", "public-domain", "week", 52, 26,
                      weekly.index, weekly.values))

    # elnino: year x month table -> monthly series 1950-01 .. 2010-12.
    el = smd.elnino.load_pandas().data
    months = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
    idx, vals = [], []
    for _, row in el.iterrows():
        for m, name in enumerate(months, start=1):
            idx.append(pd.Timestamp(year=int(row["YEAR"]), month=m, day=1))
            vals.append(row[name])
    assert not np.isnan(vals).any()
    out.append(Series("sm_elnino_monthly", "statsmodels.datasets.elnino", "public-domain", "month", 12, 12,
                      idx, vals))

    # macrodata: quarterly 1959Q1 .. 2009Q3.
    mac = smd.macrodata.load_pandas().data
    qidx = [pd.Timestamp(year=int(y), month=3 * (int(q) - 1) + 1, day=1) for y, q in zip(mac["year"], mac["quarter"])]
    for col in ("realgdp", "realcons", "realinv", "cpi", "unemp"):
        out.append(Series(f"sm_macro_{col}_quarterly", "statsmodels.datasets.macrodata", "public-domain",
                          "quarter", 4, 8, qidx, mac[col].values))


def add_azure(out):
    for name in ("conv", "code"):
        path = os.path.join(TRACES_DIR, f"AzureLLMInferenceTrace_{name}.csv")
        if not os.path.exists(path):
            print(f"note: {path} missing, skipping", file=sys.stderr)
            continue
        tr = pd.read_csv(path)
        # The trace has no time zone; read as UTC (as testdata/providers/TRACES-NOTICE.md does).
        t = pd.to_datetime(tr["TIMESTAMP"], format="%Y-%m-%d %H:%M:%S.%f")
        tokens = (tr["ContextTokens"] + tr["GeneratedTokens"]).to_numpy()
        first, last = t.min(), t.max()
        # The code trace is bursty (idle minutes; 61% of its 10-second buckets are empty),
        # so it contributes per-minute series only.
        freqs = [("minute", pd.Timedelta(minutes=1))]
        if name == "conv":
            freqs.append(("10s", pd.Timedelta(seconds=10)))
        for freq, step in freqs:
            label = freq
            # Complete buckets only: the bucket lies wholly inside [first event, last event].
            start = first.ceil(step)
            end = last.floor(step)  # exclusive end of the last complete bucket
            grid = pd.date_range(start, end - step, freq=step)
            b = t.dt.floor(step)
            keep = (b >= start) & (b < end)
            tok = pd.Series(tokens[keep.to_numpy()], index=b[keep].to_numpy()).groupby(level=0).sum()
            req = pd.Series(1, index=b[keep].to_numpy()).groupby(level=0).sum()
            tok = tok.reindex(grid, fill_value=0)
            req = req.reindex(grid, fill_value=0)
            horizon = max(1, int(round(len(grid) * 0.10)))
            src = f"azure-llm-inference-2023/{name}"
            out.append(Series(f"azure_{name}_tokens_{label}", src, "CC-BY-4.0", freq, 0, horizon,
                              grid, tok.values))
            out.append(Series(f"azure_{name}_requests_{label}", src, "CC-BY-4.0", freq, 0, horizon,
                              grid, req.values))


# Synthetic daily spend. trend: ("flat",), ("linear", growth per year as a fraction),
# ("exp", growth per day). weekend: weekend level / weekday level (None: no weekly pattern).
# shift: (fraction of the history where it happens, factor). sparse: probability of a zero day.
DAILY = [
    # id,             days, start,        base,    trend,             weekend, noise, shift,         sparse
    ("syn_daily_01",  365, "2024-01-01",  1200.0, ("linear", 0.60),   0.45,   0.05,  None,          0.0),
    ("syn_daily_02",  240, "2024-03-04",   310.0, ("exp", 0.004),     0.35,   0.08,  None,          0.0),
    ("syn_daily_03",  180, "2024-06-01",  4800.0, ("flat",),          0.60,   0.03,  None,          0.0),
    ("syn_daily_04",  300, "2024-02-12",   950.0, ("linear", -0.45),  0.70,   0.07,  None,          0.0),
    ("syn_daily_05",  150, "2024-07-15",    85.0, ("flat",),          None,   0.10,  None,          0.0),
    ("syn_daily_06",  400, "2023-11-20",    42.0, ("exp", 0.003),     None,   0.15,  None,          0.0),
    ("syn_daily_07",  270, "2024-01-08",  2300.0, ("linear", 0.25),   0.50,   0.05,  (0.55, 1.50),  0.0),
    ("syn_daily_08",  200, "2024-04-01",   640.0, ("flat",),          0.40,   0.06,  (0.45, 1.80),  0.0),
    ("syn_daily_09",  330, "2024-01-15", 15500.0, ("linear", 0.10),   0.65,   0.04,  (0.60, 0.65),  0.0),
    ("syn_daily_10",  210, "2024-05-06",     6.0, ("flat",),          0.30,   0.15,  None,          0.35),
    ("syn_daily_11",  160, "2024-08-05",    28.0, ("linear", 0.80),   0.0,    0.12,  None,          0.15),
    ("syn_daily_12",  120, "2024-09-02",   780.0, ("exp", -0.002),    0.55,   0.06,  None,          0.0),
    ("syn_daily_13",  365, "2023-07-03",   150.0, ("exp", 0.0025),    0.50,   0.09,  (0.40, 1.50),  0.0),
    ("syn_daily_14",  250, "2024-02-26",  8200.0, ("flat",),          None,   0.04,  None,          0.0),
    ("syn_daily_15",  280, "2024-03-18",   410.0, ("linear", -0.20),  0.40,   0.11,  None,          0.0),
]

# Synthetic hourly spend with a daily profile (season 24).
HOURLY = [
    # id,             days, start,        base/h, peak hour, night ratio, weekend, trend/day, noise, horizon
    ("syn_hourly_01",  14, "2024-10-07",   12.0,  14,        0.20,        1.0,     0.0,       0.06,  24),
    ("syn_hourly_02",  21, "2024-09-06",   48.0,  15,        0.35,        0.6,     0.01,      0.05,  48),
    ("syn_hourly_03",  28, "2024-11-04",    3.5,  10,        0.10,        0.5,     0.0,       0.12,  24),
    ("syn_hourly_04",  28, "2024-06-06",  210.0,  17,        0.45,        0.8,    -0.005,     0.04,  48),
]

WEEKDAY_SHAPE = np.array([1.03, 1.05, 1.04, 1.01, 0.93])  # Mon..Fri, mean ~1


def trend_factor(trend, t):
    if trend[0] == "flat":
        return np.ones_like(t, dtype=float)
    if trend[0] == "linear":
        return 1.0 + trend[1] * t / 365.0
    if trend[0] == "exp":
        return np.exp(trend[1] * t)
    raise ValueError(trend)


def add_synthetic(out):
    for k, (sid, n, start, base, trend, weekend, noise, shift, sparse) in enumerate(DAILY):
        rng = np.random.default_rng([SEED, 1, k])
        idx = pd.date_range(start, periods=n, freq="D")
        t = np.arange(n, dtype=float)
        v = base * trend_factor(trend, t)
        if weekend is not None:
            dow = idx.dayofweek.to_numpy()
            wk = np.where(dow >= 5, weekend, WEEKDAY_SHAPE[np.minimum(dow, 4)])
            v = v * wk
        v = v * np.exp(rng.normal(0.0, noise, n))
        if shift is not None:
            at = int(round(shift[0] * (n - 14)))
            v[at:] *= shift[1]
        if sparse > 0:
            v[rng.random(n) < sparse] = 0.0
        v = np.maximum(v, 0.0)
        season = 7 if weekend is not None else 0
        out.append(Series(sid, "synthetic", PROJECT_LICENCE, "day", season, 14, idx, v, money=True))

    for k, (sid, days, start, base, peak, night, weekend, tr, noise, horizon) in enumerate(HOURLY):
        rng = np.random.default_rng([SEED, 2, k])
        n = days * 24
        idx = pd.date_range(start, periods=n, freq="h")
        hour = idx.hour.to_numpy()
        d = np.abs(hour - peak)
        d = np.minimum(d, 24 - d)
        profile = night + (1.0 - night) * np.exp(-0.5 * (d / 4.0) ** 2)
        dow = idx.dayofweek.to_numpy()
        v = base * profile * np.where(dow >= 5, weekend, 1.0)
        v = v * (1.0 + tr * np.arange(n) / 24.0)
        v = v * np.exp(rng.normal(0.0, noise, n))
        out.append(Series(sid, "synthetic", PROJECT_LICENCE, "hour", 24, horizon, idx, v, money=True))


# --------------------------------------------------------------------------- reference forecasts

def holt_winters(history, season, horizon):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if season > 0:
            model = ExponentialSmoothing(history, trend="add", seasonal="add", seasonal_periods=season,
                                         initialization_method="estimated")
        else:
            model = ExponentialSmoothing(history, trend="add", seasonal=None,
                                         initialization_method="estimated")
        fit = model.fit()
        fc = np.asarray(fit.forecast(horizon), dtype=float)
    notes = sorted({type(w.message).__name__ for w in caught})
    return fc, notes


def seasonal_naive(history, season, horizon):
    if season > 0:
        last = history[-season:]
        return np.array([last[(h - 1) % season] for h in range(1, horizon + 1)])
    return np.repeat(history[-1], horizon)


# Rolling origin: besides the final origin (all of the history), forecasts from up to
# ORIGINS - 1 earlier ones, each one horizon before the next, while at least half of the
# history stays before them.
ORIGINS = 5


def rolling_origins(history_points, horizon):
    return [history_points - k * horizon for k in range(ORIGINS)
            if history_points - k * horizon >= history_points / 2]


def smape(f, a):
    f = np.asarray(f, dtype=float)
    a = np.asarray(a, dtype=float)
    den = np.abs(f) + np.abs(a)
    num = 2.0 * np.abs(f - a)
    r = np.divide(num, den, out=np.zeros_like(num), where=den != 0)
    return float(np.mean(r) * 100.0)


# --------------------------------------------------------------------------- anomaly set

def build_anomaly():
    rng = np.random.default_rng([SEED, 3])
    n_series = 30
    n_pure = 8
    n_spikes, n_shifts = 40, 15
    # Bases: log-spaced from $20/day to $20k/day, jittered, shuffled.
    bases = 10 ** (np.linspace(math.log10(20), math.log10(20000), n_series) + rng.normal(0, 0.04, n_series))
    bases[0], bases[-1] = 20.0, 20000.0
    bases = rng.permutation(bases)
    pure = set(rng.choice(n_series, size=n_pure, replace=False).tolist())
    event_series = [i for i in range(n_series) if i not in pure]

    lengths = rng.integers(180, 366, size=n_series)
    # Shifts: one each on 15 of the event series; spikes: at least one per event series, the rest spread.
    shift_owner = set(rng.choice(event_series, size=n_shifts, replace=False).tolist())
    spikes = {i: 1 for i in event_series}
    extra = n_spikes - len(event_series)
    while extra > 0:
        i = int(rng.choice(event_series))
        if spikes[i] < 4:
            spikes[i] += 1
            extra -= 1

    series_rows, event_rows, meta_rows = [], [], []
    summary = {"spike": 0, "shift": 0}
    for i in range(n_series):
        sid = f"anom_{i + 1:02d}"
        srng = np.random.default_rng([SEED, 4, i])
        n = int(lengths[i])
        start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=int(srng.integers(0, 180)))
        idx = pd.date_range(start, periods=n, freq="D")
        base = float(round(bases[i], 2))
        weekend = float(round(srng.uniform(0.4, 0.8), 2))
        noise = float(round(srng.uniform(0.03, 0.10), 3))
        growth = float(srng.uniform(-0.15, 0.40))  # per year, linear
        t = np.arange(n, dtype=float)
        dow = idx.dayofweek.to_numpy()
        level = base * (1.0 + growth * t / 365.0) * np.where(dow >= 5, weekend, WEEKDAY_SHAPE[np.minimum(dow, 4)])
        mult = np.exp(srng.normal(0.0, noise, n))

        kinds = []
        if i not in pure:
            kinds = ["spike"] * spikes[i] + (["shift"] if i in shift_owner else [])
        events = []
        if kinds:
            for _attempt in range(10000):
                days = np.sort(srng.choice(np.arange(35, n), size=len(kinds), replace=False))
                if len(days) > 1 and np.min(np.diff(days)) < 21:
                    continue
                order = srng.permutation(kinds).tolist()
                ok = all(d <= n - 30 for d, k in zip(days, order) if k == "shift")
                if ok:
                    events = list(zip(days.tolist(), order))
                    break
            else:
                raise RuntimeError(f"could not place events for {sid}")
        factor = np.ones(n)
        for d, k in events:
            if k == "spike":
                mag = round(float(srng.uniform(3.0, 8.0)), 2)
                factor[d] *= mag
            else:
                if srng.random() < 0.5:
                    mag = round(float(srng.uniform(1.6, 2.5)), 2)
                else:
                    mag = round(float(srng.uniform(0.3, 0.5)), 2)
                factor[d:] *= mag
            summary[k] += 1
            event_rows.append((sid, k, idx[d].strftime("%Y-%m-%d"), f"{mag:.2f}"))
        v = np.maximum(level * mult * factor, 0.0)
        for day, x in zip(idx, v):
            series_rows.append((sid, day.strftime("%Y-%m-%d"), fmt_cents(x)))
        meta_rows.append((sid, f"{base:.2f}", f"{weekend:.2f}", f"{noise:.3f}", "true" if events else "false"))

    assert summary == {"spike": n_spikes, "shift": n_shifts}, summary
    write_csv(os.path.join(ANOMALY_DIR, "series.csv"), ["series_id", "day", "value"], series_rows)
    write_csv(os.path.join(ANOMALY_DIR, "events.csv"), ["series_id", "kind", "day", "magnitude"], event_rows)
    write_csv(os.path.join(ANOMALY_DIR, "meta.csv"),
              ["series_id", "base", "weekend_ratio", "noise", "has_events"], meta_rows)
    return len(meta_rows), n_pure, summary


# --------------------------------------------------------------------------- main

def main():
    out = []
    add_statsmodels(out)
    add_azure(out)
    add_synthetic(out)
    out.sort(key=lambda s: s.sid)
    ids = [s.sid for s in out]
    assert len(set(ids)) == len(ids)

    series_rows, meta_rows, ref_rows, summary_rows, rolling_rows = [], [], [], [], []
    report = []
    for s in out:
        n = len(s.values)
        hist, tail = s.values[: n - s.horizon], s.values[n - s.horizon:]
        tail_text = s.text[n - s.horizon:]
        for t, txt in zip(s.index, s.text):
            series_rows.append((s.sid, ts_iso(t), txt))
        meta_rows.append((s.sid, s.source, s.licence, s.frequency, s.season, s.horizon, n - s.horizon))
        try:
            hw, notes = holt_winters(hist, s.season, s.horizon)
            if not np.all(np.isfinite(hw)):
                raise ValueError("non-finite forecast")
        except Exception as e:  # a fixture without its reference is useless: stop
            print(f"FAILED {s.sid}: {e!r}", file=sys.stderr)
            raise
        sn = seasonal_naive(hist, s.season, s.horizon)
        hw_text = [fmt6(x) for x in hw]
        sn_text = [fmt6(x) for x in sn]
        hw_r = np.array([float(x) for x in hw_text])
        sn_r = np.array([float(x) for x in sn_text])
        for h in range(s.horizon):
            ref_rows.append((s.sid, h + 1, tail_text[h], hw_text[h], sn_text[h]))
        e_hw, e_sn = smape(hw_r, tail), smape(sn_r, tail)
        summary_rows.append((s.sid, fmt6(e_hw), fmt6(e_sn)))
        report.append((s.sid, s.source, s.frequency, e_hw, e_sn, notes, bool((s.values == 0).any())))
        for k, origin in enumerate(rolling_origins(n - s.horizon, s.horizon)):
            past, ahead = s.values[:origin], s.values[origin:origin + s.horizon]
            hw_k, _ = holt_winters(past, s.season, s.horizon)
            hw_k = np.array([float(fmt6(x)) for x in hw_k])
            sn_k = np.array([float(fmt6(x)) for x in seasonal_naive(past, s.season, s.horizon)])
            rolling_rows.append((s.sid, k, origin, fmt6(smape(hw_k, ahead)), fmt6(smape(sn_k, ahead))))

    write_csv(os.path.join(FORECAST_DIR, "series.csv"), ["series_id", "ts", "value"], series_rows)
    write_csv(os.path.join(FORECAST_DIR, "meta.csv"),
              ["series_id", "source", "licence", "frequency", "season", "horizon", "history_points"], meta_rows)
    write_csv(os.path.join(FORECAST_DIR, "reference.csv"),
              ["series_id", "step", "actual", "holt_winters", "seasonal_naive"], ref_rows)
    write_csv(os.path.join(FORECAST_DIR, "reference_summary.csv"),
              ["series_id", "smape_holt_winters", "smape_seasonal_naive"], summary_rows)
    write_csv(os.path.join(FORECAST_DIR, "reference_rolling.csv"),
              ["series_id", "origin", "history_points", "smape_holt_winters", "smape_seasonal_naive"],
              rolling_rows)

    n_anom, n_pure, ev = build_anomaly()

    # ---- console summary
    print(f"statsmodels {statsmodels.__version__}, numpy {np.__version__}, pandas {pd.__version__}")
    print(f"{'series_id':34s} {'freq':8s} {'sMAPE HW':>9s} {'sMAPE SN':>9s}  warnings")
    for sid, src, freq, a, b, notes, _ in report:
        print(f"{sid:34s} {freq:8s} {a:9.3f} {b:9.3f}  {','.join(notes)}")
    df = pd.DataFrame(report, columns=["sid", "source", "freq", "hw", "sn", "notes", "zeros"])
    df["group"] = df["source"].str.split("/").str[0].str.replace("statsmodels.datasets.*", "statsmodels", regex=True)
    print()
    print(df.groupby(["group", "freq"]).agg(n=("sid", "size"), hw=("hw", "mean"), sn=("sn", "mean"),
                                            hw_wins=("hw", lambda x: int((x < df.loc[x.index, "sn"]).sum()))))
    wins = int((df.hw < df.sn).sum())
    print(f"\n{len(df)} series: mean sMAPE HW {df.hw.mean():.3f}, seasonal naive {df.sn.mean():.3f}; "
          f"median HW {df.hw.median():.3f}, SN {df.sn.median():.3f}; HW beats SN on {wins}/{len(df)}")
    dz = df[~df.zeros]
    print(f"{len(dz)} series without zero values: mean sMAPE HW {dz.hw.mean():.3f}, seasonal naive "
          f"{dz.sn.mean():.3f}; HW beats SN on {int((dz.hw < dz.sn).sum())}/{len(dz)}; "
          f"with zeros (intermittent): {', '.join(df[df.zeros].sid)}")
    print(f"anomaly set: {n_anom} series ({n_pure} without events), {ev['spike']} spikes, {ev['shift']} shifts")


if __name__ == "__main__":
    main()

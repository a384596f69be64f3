#!/usr/bin/env python3
"""SpendQL at growing sizes under a memory limit: the dashboard workload at each size.

    python3 benches/compare/scale.py --spendql target/release/spendql --work DIR \
        [--rows 10000000,100000000] [--runs 3] [--memory-limit 4G] [--json FILE]

For each size the generated data (generate.py, without PostgreSQL's CSV) is ingested into a
fresh data directory and the eight queries of compare.py are timed over pgwire, with the
ingest and the server inside a cgroup whose memory limit is --memory-limit (cgroup v1 or
v2; page cache counts against it). A query that fails, or a process the kernel kills, fails
the run. Prints per-query medians, each size's ratio to the smallest, the server's peak RSS
and the cgroup's peak usage.
"""
import argparse
import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402


def parse_bytes(text):
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
    text = text.strip().lower().removesuffix("b").removesuffix("i")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Cgroup:
    """A memory-limited cgroup (v2 if mounted, else v1's memory controller)."""

    def __init__(self, name, limit):
        v2 = "/sys/fs/cgroup/cgroup.controllers"
        if os.path.exists(v2) and "memory" in open(v2).read().split():
            self.path = os.path.join("/sys/fs/cgroup", name)
            self.limit_file, self.peak_file = "memory.max", "memory.peak"
            self.swap_file = "memory.swap.max"
        elif os.path.isdir("/sys/fs/cgroup/memory"):
            self.path = os.path.join("/sys/fs/cgroup/memory", name)
            self.limit_file = "memory.limit_in_bytes"
            self.peak_file = "memory.max_usage_in_bytes"
            self.swap_file = None
        else:
            sys.exit("no cgroup memory controller here: cannot apply --memory-limit")
        try:
            os.makedirs(self.path, exist_ok=True)
            self.write(self.limit_file, str(limit))
            if self.swap_file and os.path.exists(os.path.join(self.path, self.swap_file)):
                self.write(self.swap_file, "0")
        except OSError as e:
            sys.exit(f"cannot create the memory-limited cgroup {self.path}: {e} (run as root)")
        self.procs = os.path.join(self.path, "cgroup.procs")

    def write(self, file, value):
        with open(os.path.join(self.path, file), "w") as f:
            f.write(value)

    def enter(self):
        """Runs in a child before exec: move it into the cgroup."""
        with open(self.procs, "w") as f:
            f.write(str(os.getpid()))

    def peak(self):
        try:
            with open(os.path.join(self.path, self.peak_file)) as f:
                return int(f.read())
        except OSError:
            return None

    def reset_peak(self):
        if self.peak_file == "memory.max_usage_in_bytes":
            self.write(self.peak_file, "0")

    def remove(self):
        try:
            os.rmdir(self.path)
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spendql", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--rows", default="10000000,100000000")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--memory-limit", default="4G")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    sizes = [int(r) for r in args.rows.split(",")]
    limit = parse_bytes(args.memory_limit)
    os.makedirs(args.work, exist_ok=True)

    results = {}
    for rows in sizes:
        data = os.path.join(args.work, f"data-{rows}")
        if not os.path.exists(os.path.join(data, "meta.json")):
            print(f"generating {rows:,} rows into {data}", flush=True)
            subprocess.run([sys.executable, os.path.join(HERE, "generate.py"), "--rows",
                            str(rows), "--out", data, "--root", compare.ROOT,
                            "--no-postgres-csv"], check=True)
        cgroup = Cgroup(f"spendql-scale-{os.getpid()}-{rows}", limit)
        try:
            cgroup.reset_peak()
            print(f"SpendQL, {rows:,} rows, memory limit {limit / (1 << 30):.1f} GiB ...",
                  flush=True)
            run = compare.run_spendql(os.path.abspath(args.spendql), data, args.work, args.runs,
                                      spend_dir=os.path.join(args.work, f"spendql-data-{rows}"),
                                      preexec=cgroup.enter)
            run["cgroup_peak_mib"] = (cgroup.peak() or 0) / (1 << 20)
        finally:
            cgroup.remove()
        results[rows] = run

    base = sizes[0]
    header = "query".ljust(34) + "".join(f"{r:>14,}" for r in sizes)
    header += "".join(f"  x{r // base:<4} /{base // 1_000_000}M" for r in sizes[1:])
    print(f"\nmedians of {args.runs} runs, ms\n{header}")
    report = {"memory_limit_bytes": limit, "sizes": {}}
    for name, _sqls in compare.QUERIES:
        line = name.ljust(34)
        line += "".join(f"{results[r]['queries'][name][0] * 1e3:14.1f}" for r in sizes)
        for r in sizes[1:]:
            ratio = results[r]["queries"][name][0] / results[base]["queries"][name][0]
            line += f"{ratio:12.2f}"
        print(line)
    for r in sizes:
        run = results[r]
        total = sum(seconds for seconds, _rows in run["queries"].values())
        print(f"{r:>13,} rows: total {total * 1e3:,.0f} ms; ingest "
              f"{r / run['load_seconds']:,.0f} rows/s; server peak RSS "
              f"{run['peak_rss_mib']:,.0f} MiB; cgroup peak {run['cgroup_peak_mib']:,.0f} MiB; "
              f"cold start {run['cold_start_seconds']:.2f} s")
        report["sizes"][r] = {
            "total_ms": total * 1e3,
            "queries_ms": {n: s * 1e3 for n, (s, _rows) in run["queries"].items()},
            "load_rows_per_s": r / run["load_seconds"],
            "peak_rss_mib": run["peak_rss_mib"],
            "cgroup_peak_mib": run["cgroup_peak_mib"],
            "cold_start_s": run["cold_start_seconds"],
        }
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()

"""Turns the lines of benches/load.rs (`LABEL c=C: Q q/s p50=.. p95=.. p99=.. ms failed=F`),
from configurations that took turns over several rounds, into one Markdown table: per client
count and configuration the q/s of each round, the mean q/s against the first configuration's,
and mean p50/p99. Used by the benchmark scripts that compare configurations in one run.
Usage: python3 scripts/lib/load_table.py < lines"""

import re
import statistics
import sys

LINE = re.compile(r"(\S+) c=(\d+): ([\d.]+) q/s p50=([\d.]+) p95=([\d.]+) p99=([\d.]+) ms failed=(\d+)")


def main():
    runs = {}
    labels = []
    for line in sys.stdin:
        m = LINE.match(line.strip())
        if not m:
            continue
        if m[1] not in labels:
            labels.append(m[1])
        qps, p50, _, p99, failed = (float(x) for x in m.groups()[2:])
        runs.setdefault(int(m[2]), {}).setdefault(m[1], []).append((qps, p50, p99, failed))
    if not labels:
        sys.exit("load_table: no load lines on stdin")
    base = labels[0]
    print("| clients | configuration | q/s (each round) | mean q/s vs %s | p50 / p99 ms (mean) | failed |" % base)
    print("| --- | --- | --- | --- | --- | --- |")
    for clients, by_label in sorted(runs.items()):
        base_mean = statistics.mean(r[0] for r in by_label[base])
        for label in labels:
            rounds = by_label.get(label, [])
            if not rounds:
                continue
            mean = statistics.mean(r[0] for r in rounds)
            print("| %d | %s | %s | %.3f | %.1f / %.1f | %d |" % (
                clients, label, ", ".join("%.1f" % r[0] for r in rounds), mean / base_mean,
                statistics.mean(r[1] for r in rounds), statistics.mean(r[2] for r in rounds),
                sum(r[3] for r in rounds)))


if __name__ == "__main__":
    main()

"""Interleaved A/B of ONNX graphs on this CPU: each graph runs RUNS batches in turn, ROUNDS
times, and the medians are compared. This host's speed moves by up to 2x within a minute, so
graphs timed one after the other can trade places; interleaving spreads the drift over all.

Usage: python bench/ab_graphs.py BATCH SEQ NAME=GRAPH [NAME=GRAPH ...] [--threads T]
Prints one line per graph: median, p10 and p90 ms per batch.
"""

import sys
import time

import numpy as np

from profile_graph import inputs, session

ROUNDS, RUNS = 30, 5


def main():
    args = sys.argv[1:]
    threads = 2
    if "--threads" in args:
        at = args.index("--threads")
        threads = int(args[at + 1])
        del args[at : at + 2]
    batch, seq = int(args[0]), int(args[1])
    sessions = {name: session(path, threads) for name, path in (a.split("=", 1) for a in args[2:])}
    feed = inputs(batch, seq)
    feeds = {n: {k: v for k, v in feed.items() if k in {i.name for i in s.get_inputs()}}
             for n, s in sessions.items()}
    times = {n: [] for n in sessions}
    for n, s in sessions.items():
        s.run(None, feeds[n])
    for _ in range(ROUNDS):
        for n, s in sessions.items():
            for _ in range(RUNS):
                started = time.perf_counter()
                s.run(None, feeds[n])
                times[n].append((time.perf_counter() - started) * 1e3)
    for n, t in times.items():
        print(f"{n}: median {np.median(t):.2f} ms, p10 {np.percentile(t, 10):.2f}, "
              f"p90 {np.percentile(t, 90):.2f} (batch {batch} x {seq}, {threads} threads)")


if __name__ == "__main__":
    main()

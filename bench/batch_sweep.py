"""Windows per second of one ONNX graph at batch 1-32 of one sequence length, every token real,
in alternating rounds: how a window's cost grows with the batch it rides in on this CPU (the
evidence behind `bertqa serve`'s small CPU batches, bench/RESULTS.md "Small batches on CPU").

Usage: python bench/batch_sweep.py GRAPH SEQ [THREADS [ROUNDS]]   (threads 2, rounds 3)
Prints one line per batch size: windows/s of each round and the best.
"""

import sys
import time

import numpy as np
import onnxruntime as ort

SIZES = (1, 2, 4, 8, 16, 32)
WINDOWS_PER_ROUND = 96


def session(path, threads):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_mem_pattern = False  # as bertqa serve builds its sessions
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def feed(names, batch, seq):
    ids = (2000 + (np.arange(batch * seq) * 7919) % 20000).reshape(batch, seq).astype(np.int64)
    inputs = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
    return {name: inputs[name] for name in names}


def main():
    path, seq = sys.argv[1], int(sys.argv[2])
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    graph = session(path, threads)
    names = [i.name for i in graph.get_inputs()]
    feeds = {size: feed(names, size, seq) for size in SIZES}
    for size in SIZES:  # warm-up: the arena grows to each shape once
        graph.run(None, feeds[size])
    rates = {size: [] for size in SIZES}
    for _ in range(rounds):
        for size in SIZES:
            runs = max(2, WINDOWS_PER_ROUND // size)
            started = time.perf_counter()
            for _ in range(runs):
                graph.run(None, feeds[size])
            rates[size].append(runs * size / (time.perf_counter() - started))
    for size in SIZES:
        each = " ".join(f"{r:6.1f}" for r in rates[size])
        print(f"batch {size:2d} x {seq}: windows/s {each}  best {max(rates[size]):6.1f}")


if __name__ == "__main__":
    main()

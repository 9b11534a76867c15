"""Where an ONNX graph's time goes on this CPU: ONNX Runtime's own profiler over a few
batches of one shape, summed by operator type, next to the effective rate of the integer
matrix products and of one large integer product alone (what the kernels reach here).

Usage: python bench/profile_graph.py GRAPH [BATCH SEQ [RUNS [THREADS]]]
Prints a markdown table: operator type, share of the graph's time, ms per batch, count.
"""

import collections
import json
import os
import sys
import tempfile
import time

import numpy as np
import onnx
import onnxruntime as ort

INTEGER_PRODUCTS = ("MatMulIntegerToFloat", "DynamicQuantizeMatMul", "MatMulInteger", "QLinearMatMul")


def session(path, threads, profile_dir=None):
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = threads
    if profile_dir:
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(profile_dir, "profile")
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def inputs(batch, seq):
    rng = np.random.default_rng(0)
    ids = rng.integers(1000, 29000, size=(batch, seq), dtype=np.int64)
    segments = np.zeros((batch, seq), dtype=np.int64)
    segments[:, seq // 4 :] = 1
    return {"input_ids": ids, "attention_mask": np.ones((batch, seq), dtype=np.int64), "token_type_ids": segments}


def dense_ops_per_token(path):
    """Multiply-adds x 2 of the encoder's dense layers per token, from the graph's weights."""
    model = onnx.load(path)
    ops = 0
    for init in model.graph.initializer:
        if init.data_type == onnx.TensorProto.INT8 and len(init.dims) == 2 and "word_embeddings" not in init.name:
            ops += 2 * init.dims[0] * init.dims[1]
    return ops


def large_gemm_rate(threads, m=4096, k=384, n=1536, runs=20):
    """GOP/s of one u8 x s8 MatMulInteger of m x k x n: the kernel rate this CPU reaches."""
    a = onnx.helper.make_tensor_value_info("a", onnx.TensorProto.UINT8, [m, k])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.INT32, [m, n])
    w = onnx.numpy_helper.from_array(np.random.default_rng(1).integers(-63, 63, (k, n), dtype=np.int8), "w")
    zp = onnx.numpy_helper.from_array(np.array(128, dtype=np.uint8), "zp")
    node = onnx.helper.make_node("MatMulInteger", ["a", "w", "zp"], ["y"])
    graph = onnx.helper.make_graph([node], "gemm", [a], [y], [w, zp])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=10)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "gemm.onnx")
        onnx.save(model, path)
        s = session(path, threads)
        x = {"a": np.random.default_rng(2).integers(0, 255, (m, k), dtype=np.uint8)}
        s.run(None, x)
        started = time.perf_counter()
        for _ in range(runs):
            s.run(None, x)
        seconds = (time.perf_counter() - started) / runs
    return 2 * m * k * n / seconds / 1e9


def main():
    path = sys.argv[1]
    batch, seq = (int(sys.argv[2]), int(sys.argv[3])) if len(sys.argv) > 3 else (1, 160)
    runs = int(sys.argv[4]) if len(sys.argv) > 4 else 50
    threads = int(sys.argv[5]) if len(sys.argv) > 5 else os.cpu_count()
    feed = inputs(batch, seq)
    with tempfile.TemporaryDirectory() as d:
        s = session(path, threads, d)
        for _ in range(5):
            s.run(None, feed)
        started = time.perf_counter()
        for _ in range(runs):
            s.run(None, feed)
        wall = (time.perf_counter() - started) / (runs + 5)
        events = json.load(open(s.end_profiling()))
    by_op = collections.defaultdict(lambda: [0.0, 0])
    for e in events:
        if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
            by_op[e["args"]["op_name"]][0] += e["dur"]
            by_op[e["args"]["op_name"]][1] += 1
    batches = runs + 5
    total = sum(v[0] for v in by_op.values())
    print(f"graph {os.path.basename(path)}, batch {batch} x {seq}, {threads} threads, {runs} runs")
    print(f"wall {wall * 1e3:.2f} ms per batch, kernels {total / batches / 1e3:.2f} ms")
    print("| operator | share | ms per batch | nodes |")
    print("| --- | --- | --- | --- |")
    for op, (us, count) in sorted(by_op.items(), key=lambda kv: -kv[1][0]):
        print(f"| {op} | {100 * us / total:.1f}% | {us / batches / 1e3:.3f} | {count // batches} |")
    products = sum(v[0] for op, v in by_op.items() if op in INTEGER_PRODUCTS) / batches / 1e6
    ops = dense_ops_per_token(path) * batch * seq
    if products > 0 and ops > 0:
        print(f"integer products: {ops / products / 1e9:.0f} GOP/s inside their kernels, "
              f"{ops / wall / 1e9:.0f} GOP/s over the whole batch")
    print(f"one 4096x384x1536 u8s8 MatMulInteger alone: {large_gemm_rate(threads):.0f} GOP/s")


if __name__ == "__main__":
    main()

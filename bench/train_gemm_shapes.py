"""The fp32 matrix products of one BERT layer's training step, each timed alone in torch (the
same MKL sgemm that libtorch runs for `finetune` and for the HF Trainer), with its GFLOP/s and
its share of the layer's product time. Shows how much of an fp32 step is left to win outside
the products, and which products run below the CPU's peak.

Usage: python bench/train_gemm_shapes.py [BATCH TOKENS [THREADS]]
(defaults: 16 windows of 160 tokens, MiniLM's sizes: hidden 384, intermediate 1536, 12 heads)
"""

import sys
import time

import torch

HIDDEN, INTERMEDIATE, HEADS = 384, 1536, 12


def seconds(product, runs=20):
    for _ in range(3):
        product()
    start = time.perf_counter()
    for _ in range(runs):
        product()
    return (time.perf_counter() - start) / runs


def main():
    batch = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    tokens = int(sys.argv[2]) if len(sys.argv) > 2 else 160
    torch.set_num_threads(int(sys.argv[3]) if len(sys.argv) > 3 else 2)
    rows, head = batch * tokens, HIDDEN // HEADS
    x, w = torch.randn(rows, HIDDEN), torch.randn(HIDDEN, HIDDEN)
    up, down = torch.randn(INTERMEDIATE, HIDDEN), torch.randn(HIDDEN, INTERMEDIATE)
    inner = torch.randn(rows, INTERMEDIATE)
    q, kt = torch.randn(batch * HEADS, tokens, head), torch.randn(batch * HEADS, head, tokens)
    p, v = torch.randn(batch * HEADS, tokens, tokens), torch.randn(batch * HEADS, tokens, head)
    square, wide = 2 * rows * HIDDEN * HIDDEN, 2 * rows * HIDDEN * INTERMEDIATE
    attention = 2 * batch * HEADS * tokens * tokens * head
    # (name, product, how many such products a layer's step runs, FLOPs of one)
    products = [
        ("Q, K, V, output: forward", lambda: x @ w.t(), 4, square),
        ("Q, K, V, output: input gradient", lambda: x @ w, 4, square),
        ("Q, K, V, output: weight gradient", lambda: x.t() @ x, 4, square),
        ("intermediate: forward", lambda: x @ up.t(), 1, wide),
        ("intermediate: input gradient", lambda: inner @ up, 1, wide),
        ("intermediate: weight gradient", lambda: inner.t() @ x, 1, wide),
        ("output: forward", lambda: inner @ down.t(), 1, wide),
        ("output: input gradient", lambda: x @ down, 1, wide),
        ("output: weight gradient", lambda: x.t() @ inner, 1, wide),
        ("attention Q.K^T and P.V: forward",
         lambda: (torch.bmm(q, kt), torch.bmm(p, v)), 1, 2 * attention),
        ("attention: the four backward products",
         lambda: (torch.bmm(p, v), torch.bmm(p.transpose(1, 2), v),
                  torch.bmm(q, kt), torch.bmm(p, kt.transpose(1, 2))), 1, 4 * attention),
    ]
    timed = [(name, count * seconds(product), count * flops)
             for name, product, count, flops in products]
    total = sum(s for _, s, _ in timed)
    print(f"| product ({batch} x {tokens} tokens, {torch.get_num_threads()} threads, "
          f"torch {torch.__version__}) | ms per layer step | GFLOP/s | share |")
    print("| --- | --- | --- | --- |")
    for name, s, flops in timed:
        print(f"| {name} | {s * 1e3:.2f} | {flops / s / 1e9:.1f} | {100 * s / total:.1f}% |")
    print(f"\nOne layer's products: {total * 1e3:.1f} ms per step.")


if __name__ == "__main__":
    main()

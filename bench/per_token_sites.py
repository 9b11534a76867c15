"""Rewrites a static int8 graph (`bertqa export --int8-mode int8-static`) so that the chosen
sites quantize their input per token, as the row-wise graph does, and keep their calibrated
step elsewhere: a quick way to find which sites cost the static form its accuracy before the
exporter learns the mix. The smoothing and the int8 weights are the static graph's; only the
activation quantization of those sites changes (`QuantizeLinear` with the row's own scale,
`MatMulIntegerToFloat` with unit scale, then the row scale and the bias).

Usage: python bench/per_token_sites.py STATIC_GRAPH OUT_GRAPH SITES
  SITES: comma-separated site kinds (attention, context, feed_forward, gelu) or keys (3.gelu).
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

STEP = "static_step."


def per_token(x, zero_point, codes, prefix):
    """The row-wise quantization of `x` into `codes`; returns its nodes and the row scale."""
    nodes = [
        helper.make_node("Abs", [x], [prefix + "abs"]),
        helper.make_node("ReduceMax", [prefix + "abs"], [prefix + "max0"], axes=[-1], keepdims=1),
        helper.make_node("Max", [prefix + "max0", "pts_tiny"], [prefix + "max"]),
        helper.make_node("Div", [prefix + "max", "pts_levels"], [prefix + "row_scale"]),
        helper.make_node("Div", ["pts_levels", prefix + "max"], [prefix + "per_unit"]),
        helper.make_node("Mul", [x, prefix + "per_unit"], [prefix + "steps"]),
        helper.make_node("QuantizeLinear", [prefix + "steps", "pts_unit", zero_point], [codes]),
    ]
    return nodes, prefix + "row_scale"


def main():
    source, target, sites = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
    model = onnx.load(source)
    graph = model.graph
    graph.initializer.extend([
        numpy_helper.from_array(np.array([1e-12], np.float32), "pts_tiny"),
        numpy_helper.from_array(np.array([127.0], np.float32), "pts_levels"),
        numpy_helper.from_array(np.array(1.0, np.float32), "pts_unit"),
    ])
    nodes, row_scale_of = [], {}
    for node in graph.node:
        key = node.input[1][len(STEP):] if len(node.input) > 1 else ""
        if node.op_type == "QuantizeLinear" and node.input[1].startswith(STEP) and (
            key in sites or key.split(".", 1)[1] in sites
        ):
            added, row_scale = per_token(node.input[0], node.input[2], node.output[0], f"pts.{key}.")
            nodes += added
            row_scale_of[node.output[0]] = row_scale
        elif node.op_type == "MatMulIntegerToFloat" and node.input[0] in row_scale_of:
            codes, weights, _, w_scales, zero_point, _, bias = node.input
            out = node.output[0]
            nodes += [
                helper.make_node("MatMulIntegerToFloat",
                                 [codes, weights, "pts_unit", w_scales, zero_point],
                                 [out + ".product"], domain="com.microsoft"),
                helper.make_node("Mul", [out + ".product", row_scale_of[codes]], [out + ".scaled"]),
                helper.make_node("Add", [out + ".scaled", bias], [out]),
            ]
        else:
            nodes.append(node)
    if not row_scale_of:
        sys.exit(f"no static site matches {sites}")
    del graph.node[:]
    graph.node.extend(nodes)
    used = {name for node in nodes for name in node.input}
    kept = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(kept)
    onnx.save(model, target)
    print(f"{len(row_scale_of)} sites per token")


if __name__ == "__main__":
    main()

"""Runs the official ONNX checker on exported graphs (a development check; the exporter itself
needs no Python). Usage: python scripts/reference/check_onnx.py MODEL.onnx [MODEL.onnx ...]"""
import sys

import onnx

for path in sys.argv[1:]:
    model = onnx.load(path)
    onnx.checker.check_model(model, full_check=True)
    ops = sorted({(n.domain or "ai.onnx") + "::" + n.op_type for n in model.graph.node})
    print("%s: valid (IR %d, opsets %s, %d nodes: %s)" % (
        path, model.ir_version, {o.domain or "ai.onnx": o.version for o in model.opset_import},
        len(model.graph.node), ", ".join(ops)))

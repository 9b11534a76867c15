"""Recovers a Hugging Face checkpoint (BertForQuestionAnswering layout) from a bertqa model
folder's graph, so the Python peers can be benchmarked on the weights bertqa serves when the
training run's checkpoint is gone (it lives on the machine that trained it).

Every int8 weight is dequantized (codes x scale per output column; the word table per row) and
its SmoothQuant factors, stored in the graph as `smooth.<layer>.<site>` (1/s per input
channel), are divided back out. fp32 tensors are copied. The result is the shipped graph's
weights in fp32: not the training run's fp32 weights, which the graph no longer holds, but the
closest thing to them, and exactly what bertqa's int8 graph multiplies by. The architecture
(layers, widths, heads, LayerNorm epsilon) is read from the graph, so bert-base or -large
folders work as MiniLM does.

Usage: python bench/checkpoint_from_graph.py MODEL_DIR OUT_DIR [GRAPH]
  GRAPH defaults to the first graph listed in MODEL_DIR/bertqa.json.
"""
import json
import os
import re
import shutil
import sys

import numpy as np
import onnx
from onnx import numpy_helper
from safetensors.numpy import save_file

# Which activation site (smooth.<layer>.<site>) feeds each dense layer of an encoder layer.
SITE_OF_DENSE = {
    "attention.self.query": "attention",
    "attention.self.key": "attention",
    "attention.self.value": "attention",
    "attention.output.dense": "context",
    "intermediate.dense": "feed_forward",
    "output.dense": "gelu",
}
DENSE = re.compile(r"^bert\.encoder\.layer\.(\d+)\.(.+)$")


def dense_weight(prefix, tensors):
    """The `[out, in]` fp32 weight of Linear `prefix`, from whichever form the graph holds."""
    if f"{prefix}.weight_t" in tensors:
        return tensors[f"{prefix}.weight_t"].T.copy()
    codes = tensors[f"{prefix}.weight_int8"].astype(np.float32)  # [in, out]
    weight = (codes * tensors[f"{prefix}.weight_scale"][None, :]).T  # [out, in]
    match = DENSE.match(prefix)
    if match:
        inverse = tensors.get(f"smooth.{match.group(1)}.{SITE_OF_DENSE[match.group(2)]}")
        if inverse is not None:
            weight = weight * inverse[None, :]
    return np.ascontiguousarray(weight, dtype=np.float32)


def word_table(tensors):
    name = "bert.embeddings.word_embeddings.weight"
    if name in tensors:
        return tensors[name]
    codes = tensors[f"{name}_int8"].astype(np.float32)
    return codes * tensors[f"{name}_scale"][:, None]


def architecture(graph, tensors, words, lowercase):
    """config.json of the graph's model: widths from the weights, heads and epsilon from nodes."""
    heads = None
    epsilon = None
    for node in graph.node:
        for a in node.attribute:
            if a.name == "num_heads":
                heads = a.i
            if a.name == "epsilon":
                epsilon = a.f
    if heads is None:  # primitive attention: Reshape to [0, 0, heads, head_dim]
        shape = next(v for k, v in tensors.items() if k.startswith("heads_shape"))
        heads = int(shape[2])
    layers = 1 + max(int(m.group(1)) for m in map(DENSE.match, tensors) if m)
    return {
        "architectures": ["BertForQuestionAnswering"],
        "model_type": "bert",
        "vocab_size": int(words.shape[0]),
        "hidden_size": int(words.shape[1]),
        "num_hidden_layers": layers,
        "num_attention_heads": int(heads),
        "intermediate_size": int(tensors["bert.encoder.layer.0.intermediate.dense.bias"].shape[0]),
        "hidden_act": "gelu",
        "max_position_embeddings": int(tensors["bert.embeddings.position_embeddings.weight"].shape[0]),
        "type_vocab_size": int(tensors["bert.embeddings.token_type_embeddings.weight"].shape[0]),
        "layer_norm_eps": float(epsilon),
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "initializer_range": 0.02,
        "pad_token_id": 0,
        "do_lower_case": lowercase,
    }


def state_dict(tensors, words, layers):
    out = {"bert.embeddings.word_embeddings.weight": words}
    for name in ("position_embeddings", "token_type_embeddings"):
        key = f"bert.embeddings.{name}.weight"
        out[key] = tensors[key]
    norms = ["bert.embeddings.LayerNorm"]
    denses = ["qa_outputs"]
    for l in range(layers):
        p = f"bert.encoder.layer.{l}."
        norms += [f"{p}attention.output.LayerNorm", f"{p}output.LayerNorm"]
        denses += [p + d for d in SITE_OF_DENSE]
    for prefix in norms:
        out[f"{prefix}.weight"] = tensors[f"{prefix}.weight"]
        out[f"{prefix}.bias"] = tensors[f"{prefix}.bias"]
    for prefix in denses:
        out[f"{prefix}.weight"] = dense_weight(prefix, tensors)
        out[f"{prefix}.bias"] = tensors[f"{prefix}.bias"]
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in out.items()}


def main():
    model_dir, out_dir = sys.argv[1], sys.argv[2]
    with open(f"{model_dir}/bertqa.json") as f:
        manifest = json.load(f)
    graph_file = sys.argv[3] if len(sys.argv) > 3 else manifest["graphs"][0]
    model = onnx.load(f"{model_dir}/{graph_file}")
    tensors = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    lowercase = bool(manifest.get("lowercase", True))
    words = word_table(tensors)
    config = architecture(model.graph, tensors, words, lowercase)
    os.makedirs(out_dir, exist_ok=True)
    save_file(state_dict(tensors, words, config["num_hidden_layers"]),
              f"{out_dir}/model.safetensors", metadata={"format": "pt"})
    with open(f"{out_dir}/config.json", "w") as f:
        json.dump(config, f, indent=2)
    shutil.copy(f"{model_dir}/tokenizer.json", f"{out_dir}/tokenizer.json")
    with open(f"{out_dir}/tokenizer_config.json", "w") as f:
        json.dump({"tokenizer_class": "BertTokenizerFast", "do_lower_case": lowercase,
                   "model_max_length": config["max_position_embeddings"]}, f, indent=2)
    print(f"{out_dir}: {config['num_hidden_layers']} layers, hidden {config['hidden_size']}, "
          f"{config['num_attention_heads']} heads, from {graph_file}")


if __name__ == "__main__":
    main()

"""Bytes of weights one decoding step reads, from an onnxruntime-genai model folder's ONNX file.

Batch-1 decoding runs the whole decoder once per token. Every ``MatMulNBits`` node (q/k/v, o,
gate, up, down projections and the lm_head) streams all of its packed int4 weight, its scales
and zero points; the norms read their whole (small) weight; a ``Gather`` reads one row per token
(the fp32 embedding table, and the rotary cos/sin caches inside GroupQueryAttention read one row
too). The sizes come from the initializers' external-data lengths (``model.onnx.data``) or their
raw bytes, so no weight is loaded.

    python -m genai_batch.bench.weights MODEL_DIR
"""
from __future__ import annotations

import json
import os
import sys

import onnx
from onnx import TensorProto, helper

_ROW_READERS = {"Gather"}  # read one row of the table per token
_ONE_ROW_INPUTS = {"GroupQueryAttention": {7, 8}}  # cos_cache, sin_cache: one row per position


def _nbytes(t: TensorProto) -> int:
    for kv in t.external_data:
        if kv.key == "length":
            return int(kv.value)
    if t.raw_data:
        return len(t.raw_data)
    n = 1
    for d in t.dims:
        n *= d
    return n * helper.tensor_dtype_to_np_dtype(t.data_type).itemsize


def bytes_per_token(model_dir: str) -> dict:
    with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
        cfg = json.load(f)
    onnx_file = os.path.join(model_dir, cfg["model"]["decoder"]["filename"])
    model = onnx.load(onnx_file, load_external_data=False)
    inits = {t.name: t for t in model.graph.initializer}
    users: dict[str, list[tuple[str, int]]] = {}
    for node in model.graph.node:
        for i, name in enumerate(node.input):
            if name in inits:
                users.setdefault(name, []).append((node.op_type, i))
    out = {"matmulnbits": 0, "row_tables": 0, "other_full": 0, "total_file": 0}
    for name, t in inits.items():
        size = _nbytes(t)
        out["total_file"] += size
        ops = users.get(name, [])
        if any(op == "MatMulNBits" for op, _ in ops):
            out["matmulnbits"] += size
        elif ops and all(op in _ROW_READERS or i in _ONE_ROW_INPUTS.get(op, ()) for op, i in ops):
            rows = t.dims[0] if t.dims else 1
            out["row_tables"] += size // max(1, rows)
        else:
            out["other_full"] += size
    out["per_token"] = out["matmulnbits"] + out["row_tables"] + out["other_full"]
    data_files = {f: os.path.getsize(os.path.join(model_dir, f)) for f in os.listdir(model_dir)
                  if f.endswith((".onnx", ".onnx.data", ".data"))}
    out["files"] = data_files
    dec = cfg["model"]["decoder"]
    # KV cache read per token per already-seen position (fp32 past key and value, all layers).
    out["kv_per_position"] = 2 * dec["num_hidden_layers"] * dec["num_key_value_heads"] * dec["head_size"] * 4
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m genai_batch.bench.weights MODEL_DIR", file=sys.stderr)
        return 2
    print(json.dumps(bytes_per_token(args[0])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Writes the tokenizer stub graph the job jar carries (src/main/resources/io/genaibatch/engine/tokenizer-stub.onnx).

    python -m genai_batch.make_tokenizer_stub [OUT]

When the continuous-batching loop runs a model's decoder graph through onnxruntime itself, the job
still needs onnxruntime-genai for the tokenizer and the chat template, and onnxruntime-genai will
not make a tokenizer without a model. Loading the model's own graph there would hold a second copy
of its weights, so the job points onnxruntime-genai's decoder at this graph instead: one Cast node
from input_ids to logits, a few hundred bytes, enough for onnxruntime-genai to build a Model whose
tokenizer reads the model folder's own tokenizer files. It never generates.
"""
from __future__ import annotations

import sys

import onnx
from onnx import TensorProto, helper

DEFAULT_OUT = "src/main/resources/io/genaibatch/engine/tokenizer-stub.onnx"


def stub() -> onnx.ModelProto:
    graph = helper.make_graph(
        [helper.make_node("Cast", ["input_ids"], ["logits"], to=TensorProto.FLOAT)],
        "genai-batch-tokenizer-stub",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence"])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8,
                              producer_name="genai-batch")
    onnx.checker.check_model(model)
    return model


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out = args[0] if args else DEFAULT_OUT
    onnx.save(stub(), out)
    print(out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

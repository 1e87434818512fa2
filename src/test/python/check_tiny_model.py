#!/usr/bin/env python3
"""Check the random-weight Phi-3 test model with onnxruntime-genai.

Usage::

    python src/test/python/check_tiny_model.py [MODEL_DIR] [--max-length 128]

MODEL_DIR defaults to src/test/resources/models/tiny-phi3 (next to this script's repo root). Prints one
"PASS ..." line per check and exits 1 on the first failure ("FAIL ...").
"""

import argparse
import json
import os
import re
import sys
import time

import numpy as np
import onnxruntime_genai as og

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
DEFAULT_MODEL = os.path.join(REPO, "src", "test", "resources", "models", "tiny-phi3")

SPECIAL_IDS = {"<|endoftext|>": 32000, "<|assistant|>": 32001, "<|system|>": 32006, "<|end|>": 32007,
               "<|user|>": 32010}
END_ID = 32007


def fail(msg):
    print("FAIL " + msg)
    sys.exit(1)


def ok(msg):
    print("PASS " + msg)


def folder_size(path):
    return sum(os.path.getsize(os.path.join(r, f)) for r, _, fs in os.walk(path) for f in fs)


def run(model, tokenizer, prompts, max_length, eos_ids):
    """Greedy generation. Returns per row: (new tokens up to and including the first EOS, finish reason).

    New tokens are collected with get_next_tokens() after every step: get_sequence() leaves out the tokens of
    the last step when that step finishes every row (e.g. an immediate EOS), and in a batch it keeps the
    prompt's padding and the pad tokens written after a row finished.
    """
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=max_length, do_sample=False, batch_size=len(prompts))
    gen = og.Generator(model, params)
    if len(prompts) == 1:
        gen.append_tokens(tokenizer.encode(prompts[0]))
    else:
        gen.append_tokens(tokenizer.encode_batch(prompts))
    new = [[] for _ in prompts]
    done = [False] * len(prompts)
    while not gen.is_done():
        gen.generate_next_token()
        for i, tok in enumerate(np.asarray(gen.get_next_tokens()).tolist()):
            if not done[i]:
                new[i].append(int(tok))
                done[i] = int(tok) in eos_ids
    return [(n, "stop" if d else "length") for n, d in zip(new, done)]


def check_matmulnbits_layout():
    """The generator's int4 packing against onnxruntime's com.microsoft MatMulNBits on one node."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper
    sys.path.insert(0, os.path.join(REPO, "src", "main", "python"))
    from genai_batch.make_tiny_phi3 import quantize_q4

    k, n = 96, 40
    rng = np.random.default_rng(0)
    w = rng.standard_normal((n, k), dtype=np.float32)  # [N, K] like nn.Linear.weight
    w[3] = 0                                             # an all-zero row (scale 0)
    packed, scales = quantize_q4(w)
    lo, hi = packed & 0x0F, packed >> 4
    q = np.stack([lo, hi], axis=-1).reshape(n, k // 32, 32).astype(np.float32) - 8
    deq = (q * scales[..., None]).reshape(n, k)
    x = rng.standard_normal((3, k), dtype=np.float32)
    for level, tol in ((0, 1e-5), (4, 0.05)):
        node = helper.make_node("MatMulNBits", ["A", "B", "S"], ["Y"], domain="com.microsoft", K=k, N=n,
                                bits=4, block_size=32, accuracy_level=level)
        graph = helper.make_graph(
            [node], "g", [helper.make_tensor_value_info("A", TensorProto.FLOAT, [3, k])],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [3, n])],
            initializer=[numpy_helper.from_array(packed, "B"), numpy_helper.from_array(scales.reshape(-1), "S")])
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21), helper.make_opsetid("com.microsoft", 1)])
        sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        y = sess.run(None, {"A": x})[0]
        err = float(np.abs(y - x @ deq.T).max() / np.abs(x @ deq.T).max())
        if err > tol:
            fail("MatMulNBits accuracy_level=%d differs from the numpy int4 reference: rel err %.3g" % (level, err))
        ok("MatMulNBits (bits 4, block 32, accuracy_level %d) == numpy dequantized reference (rel err %.1e); "
           "quantization error vs fp32 %.3f" % (level, err, float(np.abs(deq - w).max())))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir", nargs="?", default=DEFAULT_MODEL)
    ap.add_argument("--max-length", type=int, default=128)
    args = ap.parse_args()
    d = args.model_dir
    max_len = args.max_length

    check_matmulnbits_layout()

    # 1. load + tokenizer round trips ---------------------------------------------------------------
    t0 = time.time()
    model = og.Model(d)
    tok = og.Tokenizer(model)
    ok("og.Model + og.Tokenizer loaded %s (%.2fs)" % (d, time.time() - t0))
    with open(os.path.join(d, "genai_config.json")) as f:
        cfg = json.load(f)
    eos_ids = set(cfg["model"]["eos_token_id"])
    hf = None
    try:
        from tokenizers import Tokenizer as HfTokenizer
        hf = HfTokenizer.from_file(os.path.join(d, "tokenizer.json"))
    except ImportError:
        pass

    for text in ["Hello world", "你好，世界", "emoji 🚀🎉"]:
        ids = np.asarray(tok.encode(text)).tolist()
        back = tok.decode(np.asarray(ids, dtype=np.int32))
        # ort-extensions keeps the "▁" dummy-prefix space when the sequence does not start after a special
        # token (add_bos_token is false, as in Phi-3-mini-4k-instruct), so decode gives " " + text.
        if back != text and back != " " + text:
            fail("round trip %r -> %s -> %r" % (text, ids, back))
        if hf is not None and hf.encode(text).ids != ids:
            fail("ort-extensions and HF tokenizers disagree on %r: %s vs %s" % (text, ids, hf.encode(text).ids))
        ok("round trip %r -> %d ids %s -> %r" % (text, len(ids), ids[:8] + (["..."] if len(ids) > 8 else []), back))
    if len(np.asarray(tok.encode("Hello world")).tolist()) != 2:
        fail("'Hello world' should be two multi-character pieces")

    chat = "<|system|>You are a comedian.<|end|><|user|>Tell me a joke about atoms<|end|><|assistant|>"
    ids = np.asarray(tok.encode(chat)).tolist()
    for name, sid in SPECIAL_IDS.items():
        if name in chat and ids.count(sid) != chat.count(name):
            fail("special token %s should encode to the single id %d: %s" % (name, sid, ids))
    if ids[0] != 32006 or ids[-1] != 32001:
        fail("special tokens not at the ends: %s" % ids)
    back = tok.decode(np.asarray(ids, dtype=np.int32))
    plain = re.sub(r"<\|[a-z0-9]+\|>", "", chat)
    if back != plain:
        fail("decode of chat ids %r != %r" % (back, plain))
    if hf is not None and hf.encode(chat).ids != ids:
        fail("ort-extensions and HF tokenizers disagree on the chat string: %s vs %s" % (ids, hf.encode(chat).ids))
    ok("special tokens encode to single ids (%s); decode skips them: %r" % (ids, back))

    # 2. chat template -------------------------------------------------------------------------------
    msgs = json.dumps([{"role": "system", "content": "You are a comedian."},
                       {"role": "user", "content": "Tell me a joke about atoms"}])
    prompt = tok.apply_chat_template(msgs, add_generation_prompt=True)
    want = "<|system|>\nYou are a comedian.<|end|>\n<|user|>\nTell me a joke about atoms<|end|>\n<|assistant|>\n"
    if prompt != want:
        fail("apply_chat_template gave %r, want %r" % (prompt, want))
    ids = np.asarray(tok.encode(prompt)).tolist()
    if hf is not None and hf.encode(prompt).ids != ids:
        fail("ort-extensions and HF tokenizers disagree on %r: %s vs %s" % (prompt, ids, hf.encode(prompt).ids))
    if 13 in ids:
        fail("the newline after a special token should be stripped (rstrip, as in Phi-3): %s" % ids)
    ok("apply_chat_template(add_generation_prompt=True) -> %r -> %s" % (prompt, ids))

    # 3. greedy generation ---------------------------------------------------------------------------
    [(new, why)] = run(model, tok, ["This is a test."], max_len, eos_ids)
    if new != [END_ID] or why != "stop":
        fail("after '.' the first new token should be <|end|> (32007) and stop; got %s (%s)" % (new[:10], why))
    ok("prompt ending in '.': first new token <|end|>, finish reason stop")

    hello_len = len(np.asarray(tok.encode("Hello world")).tolist())
    [(new, why)] = run(model, tok, ["Hello world"], max_len, eos_ids)
    if why != "length" or len(new) != max_len - hello_len:
        fail("'Hello world' should run to max_length %d: %d new tokens, %s" % (max_len, len(new), why))
    distinct = len(set(new))
    if distinct < len(new) // 4:
        fail("'Hello world' output is too repetitive: %d distinct of %d" % (distinct, len(new)))
    ok("'Hello world' runs to max_length (%d new tokens, %d distinct): %r"
       % (len(new), distinct, tok.decode(np.asarray(new[:12], dtype=np.int32)) + "..."))

    def chat_prompt(user):
        return tok.apply_chat_template(json.dumps([{"role": "user", "content": user}]), add_generation_prompt=True)

    prompts = [
        "Hello world",
        "This is a test.",
        chat_prompt("Tell me a joke about atoms"),
        chat_prompt("What is the capital of France? Answer in one word"),
        "Once upon a time, in a small village near the mountains, there lived an old man and his dog",
        "你好，世界",
        chat_prompt("Summarize the following text in three bullet points: Spark runs the job on many "
                    "executors, and each executor loads the model once. The results are written to a table."),
        "emoji 🚀🎉 and a final sentence.",
    ]
    lens = [len(np.asarray(tok.encode(p)).tolist()) for p in prompts]
    t0 = time.time()
    single = [run(model, tok, [p], max_len, eos_ids)[0] for p in prompts]
    t_single = time.time() - t0
    t0 = time.time()
    batch = run(model, tok, prompts, max_len, eos_ids)
    t_batch = time.time() - t0
    padded = max(lens)
    compared = 0
    for i, ((s_new, s_why), (b_new, b_why)) in enumerate(zip(single, batch)):
        # In a batch, max_length counts the padded prompt length, so a row that does not stop gets
        # max_length - max(prompt lengths) new tokens: compare that prefix.
        if b_why == "stop":
            if s_new != b_new:
                fail("prompt %d: batch %s (%s) != single %s (%s)" % (i, b_new, b_why, s_new[:len(b_new) + 5], s_why))
        else:
            if len(b_new) != max_len - padded or s_new[:len(b_new)] != b_new:
                fail("prompt %d: batch %s (%s) != single prefix %s (%s)" % (i, b_new, b_why, s_new[:len(b_new)], s_why))
        compared += len(b_new)
    answers = {tuple(b[0]) for b in batch}
    if len(answers) < len(prompts) - 1:
        fail("batch answers are not prompt dependent: %d distinct of %d" % (len(answers), len(prompts)))
    ok("batch of %d (prompt lengths %s) == one-at-a-time: %d new tokens compared, finish %s"
       % (len(prompts), lens, compared, [b[1] for b in batch]))
    for p, (new, why) in zip(prompts, batch):
        print("     %-40r -> %-6s %r" % (p[:40], why, tok.decode(np.asarray(new[:10], dtype=np.int32))))

    # 4. size / timing -------------------------------------------------------------------------------
    ok("model folder %s: %.2f MB; generation max_length %d: 8 single runs %.2fs, batch of 8 %.2fs"
       % (d, folder_size(d) / 1e6, max_len, t_single, t_batch))
    return 0


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Write an onnxruntime-genai model folder with Phi-3-mini-4k-instruct's architecture and random weights.

The graph is written directly with the ``onnx`` helper API and numpy (the onnxruntime-genai model builder
needs torch). It follows what the builder emits for the published
``Phi-3-mini-4k-instruct-onnx/cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4`` model:

* ``input_ids`` -> Gather on an fp32 embedding table,
* ``attention_mask`` -> ReduceSum - 1 -> int32 ``seqlens_k``; Shape[1] -> int32 ``total_sequence_length``,
* per layer: (Skip)SimplifiedLayerNormalization, packed q/k/v ``MatMulNBits`` feeding
  ``GroupQueryAttention`` (packed QKV input, rotary inside the op, cos/sin caches), ``MatMulNBits`` o_proj,
  SkipSimplifiedLayerNormalization, ``MatMulNBits`` gate_proj and up_proj, SiLU as Sigmoid+Mul, Mul,
  ``MatMulNBits`` down_proj,
* final SkipSimplifiedLayerNormalization and a ``MatMulNBits`` lm_head to 32064 logits.

All MatMulNBits weights are 4 bit, block size 32, symmetric RTN (no zero points, implicit zero point 8),
accuracy_level 4.

The weights are random but shaped so that the model can stop: hidden dimension 0 is a private channel that
only the embedding of "." writes (the layers neither read nor write it), and the lm_head row of ``<|end|>``
reads only that channel with a large weight. So greedy decoding after "." yields ``<|end|>``; otherwise
the logits are random (context dependent through attention). By default "." is an ordinary random lm_head
row, so it wins the greedy argmax only by chance (about 1 step in 30000) and answers mostly run to
max_length.

``--stop-rate R`` (0 < R <= 0.45) controls answer lengths: the lm_head row of "." is replaced by another
random row (same distribution, own rng stream of the seed, zero on dimension 0) times a gain g, solved
numerically so that P(g z0 > max of N iid standard normals) = R, N = 31740 the other random lm_head rows
(integral of phi(z) Phi(g z)^N; R = 0.03 gives g = 2.18). Given the final hidden state the random rows'
logits are iid normal whatever the hidden state's scale, so greedy decoding picks "." (then ``<|end|>``)
with probability about R per step and answer lengths are roughly geometric with mean ~1/R (some run to
max_length when greedy decoding cycles). The residual stream is dominated by the current token's embedding,
so whether "." comes next depends mostly on the current token: prompts that end alike (a chat template's
``<|assistant|>\n``) share their first answer tokens, and the lengths clump where those tokens stop. The
folder then also holds ``fixture.json`` (size, seed, num_layers, stop_rate, the gain); without
--stop-rate every file is byte-identical to before the option existed.

The tokenizer is a Llama/Phi-3 style byte-fallback BPE (HF ``tokenizer.json``) trained with the
``tokenizers`` library on a small corpus generated here, padded to 32000 pieces, plus Phi-3's special
tokens 32000..32010. The tokenizer does not depend on --seed ("." is id 272).

Sizes: ``tiny`` (2 layers, hidden 32; the committed test fixture, a few MB), ``phi3-mini`` (Phi-3-mini's
32 layers, hidden 3072, 32 heads of 96, intermediate 8192; ~2.3 GB), ``phi3-mini-4l`` (phi3-mini's
shapes with 4 layers; ~0.7 GB, benchmark runs of minutes) and ``kernel-paths`` (2 layers, hidden 1024;
~160 MB, the test suite's model on which a lone row's greedy answers drift from its batched ones).

Usage::

    python make_tiny_phi3.py --out DIR [--size tiny|phi3-mini|phi3-mini-4l|kernel-paths] [--seed 0]
                             [--stop-rate R] [--check]

``--check`` regenerates into a temporary folder (same --size, --seed and --stop-rate) and compares every
file's sha256 with DIR (exit 1 and the differing file names when they differ). Output is byte-identical for
the same size, seed and stop rate (on the same numpy / onnx / tokenizers versions).
"""

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import tempfile
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

# ----------------------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------------------

SIZES = {
    # Committed test fixture: a few MB (dominated by the 32064 x 32 fp32 embedding table).
    # head_size 16 because the CPU GroupQueryAttention kernel requires head_size % 16 == 0.
    "tiny": dict(
        num_layers=2, hidden=32, num_heads=2, num_kv_heads=2, head_size=16, intermediate=128,
        search_max_length=256, external_data=False,
    ),
    # Full Phi-3-mini-4k-instruct shape, for benchmarks (~2.3 GB, never committed).
    "phi3-mini": dict(
        num_layers=32, hidden=3072, num_heads=32, num_kv_heads=32, head_size=96, intermediate=8192,
        search_max_length=4096, external_data=True,
    ),
    # phi3-mini's shapes with 4 of its 32 layers (~0.7 GB, about 1/6 of its per-token cost): benchmark runs
    # that take minutes, not hours, with the same widths, vocab, KV-cache layout and lm_head.
    # Wide enough (hidden 1024) that onnxruntime's int4 kernels give a lone row other greedy answers than a
    # batched one within a few dozen tokens; small enough (~160 MB, seconds to make) for the test suite.
    "kernel-paths": dict(
        num_layers=2, hidden=1024, num_heads=8, num_kv_heads=8, head_size=128, intermediate=2048,
        search_max_length=512, external_data=True,
    ),
    "phi3-mini-4l": dict(
        num_layers=4, hidden=3072, num_heads=32, num_kv_heads=32, head_size=96, intermediate=8192,
        search_max_length=4096, external_data=True,
    ),
}
VOCAB_SIZE = 32064        # Phi-3's padded model vocab (logits width)
TOKENIZER_PIECES = 32000  # ids 0..31999 are BPE pieces, 32000..32010 Phi-3 special tokens
CONTEXT_LENGTH = 4096     # max_position_embeddings
ROPE_THETA = 10000.0
RMS_EPS = 1e-5
BLOCK = 32                # MatMulNBits block_size
ACCURACY_LEVEL = 4
ONNX_OPSET = 21

# Weight gains (std = gain / sqrt(fan_in)); inputs to every projection are RMS-normalised to ~1.
EMBED_STD = 1.0
QKV_GAIN = 1.0
MLP_IN_GAIN = 1.0
OUT_GAIN = 0.5            # o_proj and down_proj, divided by sqrt(num_layers): residual stays embedding-dominated
LM_HEAD_GAIN = 1.0
STOP_DIM = 0              # private hidden channel carrying "this token is '.'"
STOP_EMBED = 3.0          # embedding["."][STOP_DIM] = STOP_EMBED * sqrt(hidden) * EMBED_STD
STOP_LOGIT = 10.0         # lm_head[<|end|>][STOP_DIM] = STOP_LOGIT / sqrt(hidden)
MAX_STOP_RATE = 0.45      # --stop-rate upper bound: a row scaled by g wins at most half the steps (g*z > 0)

EXTERNAL_ALIGN = 4096
EXTERNAL_MIN_BYTES = 1024

MODEL_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
MANIFEST = "MANIFEST.sha256"
FIXTURE = "fixture.json"  # written only with --stop-rate (genai_config.json rejects unknown keys)

# ----------------------------------------------------------------------------------------------------------
# Tokenizer
# ----------------------------------------------------------------------------------------------------------

SPECIAL_TOKENS = [  # id, content, rstrip, special  (as in Phi-3-mini-4k-instruct's tokenizer files)
    (32000, "<|endoftext|>", False, True),
    (32001, "<|assistant|>", True, True),
    (32002, "<|placeholder1|>", True, True),
    (32003, "<|placeholder2|>", True, True),
    (32004, "<|placeholder3|>", True, True),
    (32005, "<|placeholder4|>", True, True),
    (32006, "<|system|>", True, True),
    (32007, "<|end|>", True, True),
    (32008, "<|placeholder5|>", True, True),
    (32009, "<|placeholder6|>", True, True),
    (32010, "<|user|>", True, True),
]
BASE_TOKENS = [  # id, content, rstrip, special
    (0, "<unk>", False, True),
    (1, "<s>", False, True),
    (2, "</s>", True, False),
]
END_TOKEN_ID = 32007
EOS_TOKEN_IDS = [32007, 32001, 32000]
PAD_TOKEN_ID = 32000
BOS_TOKEN_ID = 1
ADD_BOS_TOKEN = False  # Phi-3-mini-4k-instruct's tokenizer_config.json has add_bos_token false

CHAT_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + message['content'] "
    "+ '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + message['content'] + '<|end|>\n'}}"
    "{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' + message['content'] + '<|end|>\n'}}"
    "{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}"
    "{% endif %}"
)

SPIECE = "\u2581"  # ▁

CORPUS_TEXT = """\
Hello world! Hello, world. Hello there, how are you today? I am fine, thank you.
You are a helpful assistant. You are a comedian. Tell me a joke about atoms.
Why don't scientists trust atoms? Because they make up everything!
Please answer the question below in one short sentence.
What is the capital of France? The capital of France is Paris.
Summarize the following text in three bullet points.
Translate the following sentence into French, German and Spanish.
Write a short poem about the sea, the sky and the wind.
The quick brown fox jumps over the lazy dog.
A batch of prompts is scored by the model, one token at a time, until the end of the answer.
Large language models generate text by predicting the next token from the previous tokens.
The tokenizer splits text into pieces; the model reads the pieces and writes new ones.
Spark runs the job on many executors, and each executor loads the model once.
The results are written to a table with the prompt, the answer, the number of tokens and the time.
This is a test. This is only a test. It is not a real model, and its answers mean nothing.
In the beginning there was nothing, and then there was a small model with random weights.
Could you explain how this works, step by step, with an example?
Sure! First, we read the input. Second, we process it. Third, we write the output.
Thank you very much for your help. You're welcome; have a nice day.
I don't know the answer to that question, but I can try to find out.
Once upon a time, in a small village near the mountains, there lived an old man and his dog.
Every morning they walked to the river, and every evening they came back home before dark.
The weather today is sunny with a few clouds, and the temperature is about twenty degrees.
Numbers such as 1, 2, 3, 10, 42, 100, 2024 and 3.14 appear in many questions.
Email me at user@example.com or visit https://example.com/docs?page=2&lang=en for more.
Use the function f(x) = x * x + 2 * x + 1 and compute f(3); the result is 16.
Keys and values: {"name": "Alice", "age": 30, "city": "Berlin"} [1, 2, 3] <tag> #hash $100 50% ~tilde `code` a|b ^ _ \\ ;
"""

CORPUS_CHINESE = """\
你好，世界。今天天气很好，我们去公园散步吧。
请用一句话回答下面的问题：法国的首都是哪里？法国的首都是巴黎。
这是一个测试模型，它的回答没有任何意义。
"""

WORDS = (
    "the of and to in is that for it as was with be by on not he this are or his from at which but have an "
    "they you were her she there would their we him been has when who will more no if out so said what up its "
    "about into than them can only other new some could time these two may then do first any my now such like "
    "our over man me even most made after also did many before must through back years where much your way "
    "well down should because each just those people how too little state good very make world still own see "
    "men work long get here between both life being under never day same another know while last might us "
    "great old year off come since against go came right used take three question answer model token prompt "
    "batch score text write read data table value result example number system user assistant story joke "
    "explain summary list reason think help please thanks hello world sentence language translate generate"
).split()


def build_corpus():
    """Deterministic training corpus: fixed text plus generated sentences from a word list."""
    rnd = random.Random(1000)
    lines = CORPUS_TEXT.splitlines() + CORPUS_CHINESE.splitlines()
    # every printable ASCII character, so that all of them are single-character pieces
    lines.append(" ".join(chr(c) for c in range(33, 127)))
    for _ in range(4000):
        n = rnd.randint(4, 14)
        words = [rnd.choice(WORDS) for _ in range(n)]
        words[0] = words[0].capitalize()
        sent = " ".join(words)
        if rnd.random() < 0.3:
            k = rnd.randint(1, n - 1)
            sent = " ".join(sent.split()[:k]) + ", " + " ".join(sent.split()[k:])
        sent += rnd.choice([".", ".", ".", "?", "!", ":", ";"])
        lines.append(sent)
    return lines


def _allowed_piece(piece):
    # ASCII letters/punctuation/digits and the word-start marker; everything else falls back to byte tokens
    return all((32 < ord(ch) < 127) or ch == SPIECE for ch in piece)


def train_bpe():
    """Train BPE merges; returns (learned_pieces_in_id_order, merges) without special/byte tokens."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SPIECE), normalizers.Replace(" ", SPIECE)])
    # Training-time only: sentencepiece-like word boundaries (pieces never span "▁" inside),
    # punctuation and digits stay single characters (Llama splits digits).
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(SPIECE, behavior="merged_with_next"),
        pre_tokenizers.Punctuation(behavior="isolated"),
        pre_tokenizers.Digits(individual_digits=True),
    ])
    trainer = trainers.BpeTrainer(
        vocab_size=4000, min_frequency=2, show_progress=False,
        special_tokens=["<unk>", "<s>", "</s>"],
        initial_alphabet=[chr(c) for c in range(33, 127)] + [SPIECE],
    )
    tok.train_from_iterator(build_corpus(), trainer=trainer)
    data = json.loads(tok.to_str())
    vocab = sorted(data["model"]["vocab"].items(), key=lambda kv: kv[1])
    pieces = [p for p, _ in vocab if p not in ("<unk>", "<s>", "</s>") and _allowed_piece(p)]
    keep = set(pieces)
    merges = []
    for m in data["model"]["merges"]:
        a, b = m if isinstance(m, list) else m.split(" ")
        if a in keep and b in keep and (a + b) in keep:
            merges.append((a, b))
    return pieces, merges


def _pad_pieces(existing, count):
    """Unreachable (no merge produces them) pseudo-word pieces to fill the vocab to 32000 entries."""
    rnd = random.Random(2000)
    cons = "b c d f g h j k l m n p r s t v w z br st tr ch sh th".split()
    vows = "a e i o u ai ou ea".split()
    out, seen = [], set(existing)
    while len(out) < count:
        word = "".join(rnd.choice(cons) + rnd.choice(vows) for _ in range(rnd.randint(1, 3)))
        if rnd.random() < 0.2:
            word += rnd.choice(cons)
        piece = (SPIECE + word) if rnd.random() < 0.75 else word
        if len(piece) < 3 or piece in seen:
            continue
        seen.add(piece)
        out.append(piece)
    return out


def _added_token(tid, content, rstrip, special):
    return {"id": tid, "content": content, "single_word": False, "lstrip": False, "rstrip": rstrip,
            "normalized": False, "special": special}


def build_tokenizer_files():
    """Returns (files: dict name -> text, vocab: list of 32000 pieces). Independent of --seed."""
    learned, merges = train_bpe()
    vocab = [t[1] for t in BASE_TOKENS] + ["<0x%02X>" % b for b in range(256)] + learned
    if len(vocab) > TOKENIZER_PIECES:
        raise SystemExit("BPE vocab too large: %d" % len(vocab))
    vocab += _pad_pieces(vocab, TOKENIZER_PIECES - len(vocab))
    assert len(vocab) == len(set(vocab)) == TOKENIZER_PIECES

    if ADD_BOS_TOKEN:
        post = {"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {"<s>": {"id": "<s>", "ids": [BOS_TOKEN_ID], "tokens": ["<s>"]}}}
    else:
        post = {"type": "TemplateProcessing",
                "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {}}
    tokenizer_json = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_added_token(*t) for t in BASE_TOKENS + SPECIAL_TOKENS],
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Prepend", "prepend": SPIECE},
            {"type": "Replace", "pattern": {"String": " "}, "content": SPIECE},
        ]},
        "pre_tokenizer": None,
        "post_processor": post,
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "Replace", "pattern": {"String": SPIECE}, "content": " "},
            {"type": "ByteFallback"},
            {"type": "Fuse"},
            {"type": "Strip", "content": " ", "start": 1, "stop": 0},
        ]},
        "model": {
            "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
            "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
            "vocab": {p: i for i, p in enumerate(vocab)},
            "merges": ["%s %s" % m for m in merges],
        },
    }

    def tok_entry(content, rstrip, special):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": rstrip,
                "single_word": False, "special": special}

    tokenizer_config = {
        "add_bos_token": ADD_BOS_TOKEN,
        "add_eos_token": False,
        "added_tokens_decoder": {str(t[0]): tok_entry(*t[1:]) for t in BASE_TOKENS + SPECIAL_TOKENS},
        "bos_token": "<s>",
        "chat_template": CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "legacy": False,
        "model_max_length": CONTEXT_LENGTH,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "tokenizer_class": "LlamaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }

    def st(content):
        return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}

    special_tokens_map = {"bos_token": st("<s>"), "eos_token": st("<|endoftext|>"),
                          "pad_token": st("<|endoftext|>"), "unk_token": st("<unk>")}
    files = {
        "tokenizer.json": json.dumps(tokenizer_json, indent=2, ensure_ascii=False) + "\n",
        "tokenizer_config.json": json.dumps(tokenizer_config, indent=2, ensure_ascii=False) + "\n",
        "special_tokens_map.json": json.dumps(special_tokens_map, indent=2, ensure_ascii=False) + "\n",
    }
    return files, vocab


# ----------------------------------------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------------------------------------

def _rng(seed, name):
    return np.random.default_rng([seed, zlib.crc32(name.encode("utf-8"))])


def quantize_q4(w):
    """Symmetric RTN 4-bit quantization of w [N, K] (rows = output features) in blocks of 32 along K.

    Returns (B uint8 [N, K/32, 16], scales float32 [N, K/32]) in com.microsoft MatMulNBits layout:
    q = round(w / scale) + 8 in [0, 15], two values per byte, low nibble first; w ~= (q - 8) * scale.
    """
    n, k = w.shape
    blocks = w.reshape(n, k // BLOCK, BLOCK)
    scale = (np.abs(blocks).max(axis=-1) / np.float32(7.0)).astype(np.float32)
    inv = np.zeros_like(scale)
    np.divide(np.float32(1.0), scale, out=inv, where=scale > 0)
    q = np.clip(np.rint(blocks * inv[..., None]), -8, 7).astype(np.int16) + 8
    q = q.astype(np.uint8)
    packed = (q[..., 0::2] | (q[..., 1::2] << 4)).astype(np.uint8)
    return packed, scale


class Sink:
    """Collects initializers, inline or in one external data file written chunk by chunk."""

    def __init__(self, folder, external):
        self.external = external
        self.initializers = []
        self.f = open(os.path.join(folder, DATA_FILE), "wb") if external else None

    def _align(self):
        pos = self.f.tell()
        pad = (-pos) % EXTERNAL_ALIGN
        if pad:
            self.f.write(b"\0" * pad)
        return pos + pad

    def add(self, name, array):
        array = np.ascontiguousarray(array)
        if not self.external or array.nbytes < EXTERNAL_MIN_BYTES:
            self.initializers.append(numpy_helper.from_array(array, name))
        else:
            self.add_chunked(name, array.shape, array.dtype, [array])
        return name

    def add_chunked(self, name, shape, dtype, chunks):
        """chunks: iterable of arrays whose concatenated bytes (C order) form the tensor."""
        if not self.external:
            arr = np.concatenate([np.ascontiguousarray(c).reshape(-1) for c in chunks]).reshape(shape)
            self.initializers.append(numpy_helper.from_array(arr.astype(dtype, copy=False), name))
            return name
        offset = self._align()
        length = 0
        for c in chunks:
            b = np.ascontiguousarray(c, dtype=dtype).tobytes()
            self.f.write(b)
            length += len(b)
        expected = int(np.prod(shape)) * np.dtype(dtype).itemsize
        assert length == expected, (name, length, expected)
        t = TensorProto()
        t.name = name
        t.data_type = helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
        t.dims.extend(shape)
        t.data_location = TensorProto.EXTERNAL
        for k, v in (("location", DATA_FILE), ("offset", str(offset)), ("length", str(length))):
            e = t.external_data.add()
            e.key, e.value = k, v
        self.initializers.append(t)
        return name

    def close(self):
        if self.f:
            self.f.close()


def _row_chunks(n, k, max_elems=1 << 24):
    rows = max(1, min(n, max_elems // max(k, 1)))
    for start in range(0, n, rows):
        yield start, min(n, start + rows)


def add_q4_weight(sink, prefix, n, k, seed, gain, zero_in=(), zero_out=(), special_rows=None):
    """Random [N, K] weight (std gain/sqrt(K)), quantized, written chunk by chunk.

    zero_in: input (K) indices whose weights are 0; zero_out: output (N) rows that are 0;
    special_rows: dict row -> full float32 row [K] (after zeroing).
    Returns (B name, scales name).
    """
    rng = _rng(seed, prefix)
    std = np.float32(gain / math.sqrt(k))
    all_scales = []

    def chunks():
        for start, end in _row_chunks(n, k):
            w = rng.standard_normal((end - start, k), dtype=np.float32) * std
            if len(zero_in):
                w[:, list(zero_in)] = 0
            for r in zero_out:
                if start <= r < end:
                    w[r - start] = 0
            for r, row in (special_rows or {}).items():
                if start <= r < end:
                    w[r - start] = row
            packed, scale = quantize_q4(w)
            all_scales.append(scale)
            yield packed

    b_name = sink.add_chunked(prefix + ".weight_Q4", [n, k // BLOCK, BLOCK // 2], np.uint8, chunks())
    s_name = sink.add(prefix + ".weight_scales", np.concatenate(all_scales).reshape(-1))
    return b_name, s_name


_U_LO, _U_HI, _DU = -12.0, 12.0, 1e-3
_LOG_CDF_GRID = None


def _log_cdf_grid():
    """(u grid, log Phi(u)): log(0.5 erfc(-u/sqrt2)) below 0, log1p(-0.5 erfc(u/sqrt2)) above (accurate
    near 1). Computed once."""
    global _LOG_CDF_GRID
    if _LOG_CDF_GRID is None:
        u = np.linspace(_U_LO, _U_HI, int(round((_U_HI - _U_LO) / _DU)) + 1)
        log_cdf = np.array([math.log(0.5 * math.erfc(-x / math.sqrt(2))) if x < 0 else
                            math.log1p(-0.5 * math.erfc(x / math.sqrt(2))) for x in u])
        _LOG_CDF_GRID = (u, log_cdf)
    return _LOG_CDF_GRID


def stop_win_probability(gain, competitors):
    """P(gain * z0 > max(z1..zN)) for iid standard normals z0..zN (N = competitors).

    = integral phi(z) Phi(gain z)^N dz; with u = gain z: integral phi(u / gain) / gain * Phi(u)^N du on a
    fixed u grid (trapezoid), plus the analytic tail above the grid, where Phi(u)^N = 1.
    """
    u, log_cdf = _log_cdf_grid()
    u_hi, du = _U_HI, _DU
    cdf_n = np.exp(competitors * log_cdf)
    dens = np.exp(-0.5 * (u / gain) ** 2) / (gain * math.sqrt(2 * math.pi))
    f = dens * cdf_n
    body = float(np.sum(f[1:] + f[:-1]) * 0.5 * du)  # trapezoid
    tail = 0.5 * math.erfc(u_hi / gain / math.sqrt(2))
    return body + tail


def stop_row_gain(rate, competitors):
    """The gain g with stop_win_probability(g, competitors) == rate (bisection on log g), rounded to 6
    significant digits so that the written weights do not depend on the last bits of the integration."""
    if not 0 < rate <= MAX_STOP_RATE:
        raise ValueError("stop rate must be in (0, %g], got %r" % (MAX_STOP_RATE, rate))
    lo, hi = math.log(1e-3), math.log(1e4)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        if stop_win_probability(math.exp(mid), competitors) < rate:
            lo = mid
        else:
            hi = mid
    return float("%.6g" % math.exp(0.5 * (lo + hi)))


def rotary_caches(head_size):
    half = head_size // 2
    cos = np.empty((CONTEXT_LENGTH, half), dtype=np.float32)
    sin = np.empty((CONTEXT_LENGTH, half), dtype=np.float32)
    # python's math (correctly rounded libm in practice) instead of numpy SIMD paths, for bit-reproducibility
    inv_freq = [1.0 / (ROPE_THETA ** (2.0 * i / head_size)) for i in range(half)]
    for t in range(CONTEXT_LENGTH):
        cos[t] = [math.cos(t * f) for f in inv_freq]
        sin[t] = [math.sin(t * f) for f in inv_freq]
    return cos, sin


# ----------------------------------------------------------------------------------------------------------
# Graph
# ----------------------------------------------------------------------------------------------------------

def build_model(folder, size, seed, stop_token_ids, stop_rate=None):
    """Writes model.onnx (and model.onnx.data). Returns a dict describing the stop row when stop_rate is
    given (see --stop-rate), else None."""
    cfg = SIZES[size]
    L, D = cfg["num_layers"], cfg["hidden"]
    nh, nkv, hs, inter = cfg["num_heads"], cfg["num_kv_heads"], cfg["head_size"], cfg["intermediate"]
    V = VOCAB_SIZE
    assert nh * hs == D and D % BLOCK == 0 and inter % BLOCK == 0
    sink = Sink(folder, cfg["external_data"])
    nodes = []
    consts = {}

    def const(name, arr):
        if name not in consts:
            consts[name] = sink.add(name, arr)
        return consts[name]

    def node(op, inputs, outputs, name, domain=None, **attrs):
        nodes.append(helper.make_node(op, inputs, outputs, name=name, domain=domain, **attrs))
        return outputs[0]

    def matmul_nbits(name, prefix, x, n, k, gain, **kw):
        b, s = add_q4_weight(sink, prefix, n, k, seed, gain, **kw)
        return node("MatMulNBits", [x, b, s], [name + "/output_0"], name, domain="com.microsoft",
                    K=k, N=n, bits=4, block_size=BLOCK, accuracy_level=ACCURACY_LEVEL)

    # --- embedding (fp32). Column STOP_DIM is 0 except for the stop tokens ("."), which get a large value.
    emb_name = "model.embed_tokens.weight"
    rng = _rng(seed, emb_name)

    def emb_chunks():
        for start, end in _row_chunks(V, D):
            e = rng.standard_normal((end - start, D), dtype=np.float32) * np.float32(EMBED_STD)
            e[:, STOP_DIM] = 0
            for t in stop_token_ids:
                if start <= t < end:
                    e[t - start, STOP_DIM] = np.float32(STOP_EMBED * math.sqrt(D) * EMBED_STD)
            yield e

    sink.add_chunked(emb_name, [V, D], np.float32, emb_chunks())
    hidden = node("Gather", [emb_name, "input_ids"], ["/model/embed_tokens/Gather/output_0"],
                  "/model/embed_tokens/Gather")

    # --- attention mask -> seqlens_k, total_sequence_length
    m = "/model/attn_mask_reformat/attn_mask_subgraph"
    one_1d = const("/model/constants/TensorProto.INT64/1D/1", np.array([1], dtype=np.int64))
    one_0d = const("/model/constants/TensorProto.INT64/0D/1", np.array(1, dtype=np.int64))
    rs = node("ReduceSum", ["attention_mask", one_1d], [m + "/ReduceSum/output_0"], m + "/ReduceSum", keepdims=1)
    sub = node("Sub", [rs, one_1d], [m + "/Sub/output_0"], m + "/Sub")
    seqlens_k = node("Cast", [sub], [m + "/Sub/Cast/output_0"], m + "/Sub/Cast", to=TensorProto.INT32)
    shp = node("Shape", ["attention_mask"], [m + "/Shape/output_0"], m + "/Shape")
    gat = node("Gather", [shp, one_0d], [m + "/Gather/output_0"], m + "/Gather", axis=0)
    total_len = node("Cast", [gat], [m + "/Gather/Cast/output_0"], m + "/Gather/Cast", to=TensorProto.INT32)

    cos, sin = rotary_caches(hs)
    cos_name, sin_name = sink.add("cos_cache", cos), sink.add("sin_cache", sin)
    ones = np.ones(D, dtype=np.float32)
    out_gain = OUT_GAIN / math.sqrt(L)

    residual, skip_in = hidden, None
    for i in range(L):
        p = "/model/layers.%d" % i
        w = "model.layers.%d" % i
        g = sink.add(w + ".input_layernorm.weight", ones)
        if i == 0:
            ln = node("SimplifiedLayerNormalization", [hidden, g], [p + "/input_layernorm/LayerNorm/output_0"],
                      p + "/input_layernorm/LayerNorm", epsilon=RMS_EPS, axis=-1, stash_type=1)
        else:
            name = p + "/input_layernorm/SkipLayerNorm"
            ln = node("SkipSimplifiedLayerNormalization", [skip_in, residual, g],
                      [name + "/output_0", "", "", name + "/output_3"], name, domain="com.microsoft",
                      epsilon=RMS_EPS)
            residual = name + "/output_3"
        # attention: packed QKV MatMulNBits -> GroupQueryAttention (rotary inside) -> o_proj
        qkv = matmul_nbits(p + "/attn/qkv_proj/MatMul_Q4", w + ".attn.qkv_proj.MatMul", ln,
                           (nh + 2 * nkv) * hs, D, QKV_GAIN, zero_in=(STOP_DIM,))
        gqa = p + "/attn/GroupQueryAttention"
        attn = node("GroupQueryAttention",
                    [qkv, "", "", "past_key_values.%d.key" % i, "past_key_values.%d.value" % i,
                     seqlens_k, total_len, cos_name, sin_name],
                    [gqa + "/output_0", "present.%d.key" % i, "present.%d.value" % i], gqa,
                    domain="com.microsoft", num_heads=nh, kv_num_heads=nkv, scale=1.0 / math.sqrt(hs),
                    do_rotary=1, rotary_interleaved=0)
        o = matmul_nbits(p + "/attn/o_proj/MatMul_Q4", w + ".attn.o_proj.MatMul", attn, D, nh * hs,
                         out_gain, zero_out=(STOP_DIM,))
        g2 = sink.add(w + ".post_attention_layernorm.weight", ones)
        name = p + "/post_attention_layernorm/SkipLayerNorm"
        ln2 = node("SkipSimplifiedLayerNormalization", [o, residual, g2],
                   [name + "/output_0", "", "", name + "/output_3"], name, domain="com.microsoft",
                   epsilon=RMS_EPS)
        residual = name + "/output_3"
        # MLP: gate_proj, up_proj, SiLU(gate) * up, down_proj
        gate = matmul_nbits(p + "/mlp/gate_proj/MatMul_Q4", w + ".mlp.gate_proj.MatMul", ln2, inter, D,
                            MLP_IN_GAIN, zero_in=(STOP_DIM,))
        up = matmul_nbits(p + "/mlp/up_proj/MatMul_Q4", w + ".mlp.up_proj.MatMul", ln2, inter, D,
                          MLP_IN_GAIN, zero_in=(STOP_DIM,))
        sig = node("Sigmoid", [gate], [p + "/mlp/act_fn/Sigmoid/output_0"], p + "/mlp/act_fn/Sigmoid")
        act = node("Mul", [gate, sig], [p + "/mlp/act_fn/Mul/output_0"], p + "/mlp/act_fn/Mul")
        mul = node("Mul", [act, up], [p + "/mlp/Mul/output_0"], p + "/mlp/Mul")
        skip_in = matmul_nbits(p + "/mlp/down_proj/MatMul_Q4", w + ".mlp.down_proj.MatMul", mul, D, inter,
                               out_gain, zero_out=(STOP_DIM,))

    gf = sink.add("model.norm.weight", ones)
    name = "/model/layers.%d/final_norm_layernorm/SkipLayerNorm" % L
    final = node("SkipSimplifiedLayerNormalization", [skip_in, residual, gf], [name + "/output_0"], name,
                 domain="com.microsoft", epsilon=RMS_EPS)

    # lm_head: random rows, except: only <|end|> reads STOP_DIM (and nothing else); rows that must never be
    # produced by chance (unk/bos/eos, byte tokens, special and unused ids) are zero (logit exactly 0, and
    # the max of the random logits is always far above 0).
    end_row = np.zeros(D, dtype=np.float32)
    end_row[STOP_DIM] = STOP_LOGIT / math.sqrt(D)
    zero_rows = [r for r in list(range(0, 3 + 256)) + list(range(TOKENIZER_PIECES, V)) if r != END_TOKEN_ID]
    special_rows = {END_TOKEN_ID: end_row}
    stop_info = None
    if stop_rate is not None:
        # --stop-rate: the row of "." is a fresh random row (same distribution as the others, STOP_DIM zero)
        # times a gain g. Given the final hidden state h, the random rows' logits are iid N(0, s^2) with s
        # = |h| std (whatever the scale of h), and "."'s is g times one more such draw; g is solved so that
        # "." is the argmax with probability stop_rate against the other random rows.
        assert len(stop_token_ids) == 1, stop_token_ids
        competitors = V - len(zero_rows) - 1 - len(stop_token_ids)  # random rows other than "." (<|end|> excluded)
        gain = stop_row_gain(stop_rate, competitors)
        row = (_rng(seed, "lm_head.MatMul/stop_row").standard_normal(D, dtype=np.float32)
               * np.float32(LM_HEAD_GAIN / math.sqrt(D)))
        row[STOP_DIM] = 0
        row *= np.float32(gain)
        special_rows[stop_token_ids[0]] = row
        stop_info = {"stop_token_id": stop_token_ids[0], "stop_row_gain": gain, "competing_rows": competitors}
    b, s = add_q4_weight(sink, "lm_head.MatMul", V, D, seed, LM_HEAD_GAIN, zero_in=(STOP_DIM,),
                         zero_out=zero_rows, special_rows=special_rows)
    node("MatMulNBits", [final, b, s], ["logits"], "/lm_head/MatMul_Q4", domain="com.microsoft",
         K=D, N=V, bits=4, block_size=BLOCK, accuracy_level=ACCURACY_LEVEL)
    sink.close()

    f32, i64 = TensorProto.FLOAT, TensorProto.INT64
    inputs = [helper.make_tensor_value_info("input_ids", i64, ["batch_size", "sequence_length"]),
              helper.make_tensor_value_info("attention_mask", i64, ["batch_size", "total_sequence_length"])]
    outputs = [helper.make_tensor_value_info("logits", f32, ["batch_size", "sequence_length", V])]
    for i in range(L):
        for kv in ("key", "value"):
            inputs.append(helper.make_tensor_value_info(
                "past_key_values.%d.%s" % (i, kv), f32, ["batch_size", nkv, "past_sequence_length", hs]))
            outputs.append(helper.make_tensor_value_info(
                "present.%d.%s" % (i, kv), f32, ["batch_size", nkv, "total_sequence_length", hs]))
    graph = helper.make_graph(nodes, "main_graph", inputs, outputs, initializer=sink.initializers)
    model = helper.make_model(graph, producer_name="genai-batch make_tiny_phi3", producer_version="1",
                              opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                             helper.make_opsetid("com.microsoft", 1)])
    model.ir_version = 10
    with open(os.path.join(folder, MODEL_FILE), "wb") as f:
        f.write(model.SerializeToString())
    return stop_info


def genai_config(size):
    cfg = SIZES[size]
    return {
        "model": {
            "bos_token_id": BOS_TOKEN_ID,
            "context_length": CONTEXT_LENGTH,
            "decoder": {
                "session_options": {"log_id": "onnxruntime-genai", "provider_options": []},
                "filename": MODEL_FILE,
                "head_size": cfg["head_size"],
                "hidden_size": cfg["hidden"],
                "inputs": {
                    "input_ids": "input_ids",
                    "attention_mask": "attention_mask",
                    "past_key_names": "past_key_values.%d.key",
                    "past_value_names": "past_key_values.%d.value",
                },
                "outputs": {
                    "logits": "logits",
                    "present_key_names": "present.%d.key",
                    "present_value_names": "present.%d.value",
                },
                "num_attention_heads": cfg["num_heads"],
                "num_hidden_layers": cfg["num_layers"],
                "num_key_value_heads": cfg["num_kv_heads"],
            },
            "eos_token_id": EOS_TOKEN_IDS,
            "pad_token_id": PAD_TOKEN_ID,
            "type": "phi3",
            "vocab_size": VOCAB_SIZE,
        },
        "search": {
            "diversity_penalty": 0.0,
            "do_sample": False,
            "early_stopping": True,
            "length_penalty": 1.0,
            "max_length": cfg["search_max_length"],
            "min_length": 0,
            "no_repeat_ngram_size": 0,
            "num_beams": 1,
            "num_return_sequences": 1,
            "past_present_share_buffer": True,
            "repetition_penalty": 1.0,
            "temperature": 1.0,
            "top_k": 1,
            "top_p": 1.0,
        },
    }


# ----------------------------------------------------------------------------------------------------------
# Driver
# ----------------------------------------------------------------------------------------------------------

def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def list_files(folder):
    out = []
    for root, _, names in os.walk(folder):
        for n in names:
            rel = os.path.relpath(os.path.join(root, n), folder).replace(os.sep, "/")
            out.append(rel)
    return sorted(out)


def generate(folder, size, seed, stop_rate=None):
    os.makedirs(folder, exist_ok=True)
    for stale in (MODEL_FILE, DATA_FILE, MANIFEST, FIXTURE):
        p = os.path.join(folder, stale)
        if os.path.exists(p):
            os.remove(p)
    tok_files, vocab = build_tokenizer_files()
    for name, text in tok_files.items():
        with open(os.path.join(folder, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    stop_ids = [vocab.index(".")]
    stop_info = build_model(folder, size, seed, stop_ids, stop_rate)
    with open(os.path.join(folder, "genai_config.json"), "w", encoding="utf-8", newline="\n") as f:
        f.write(json.dumps(genai_config(size), indent=4) + "\n")
    if stop_rate is not None:
        # Only with --stop-rate, so that folders made without it are unchanged (and listed in the manifest).
        fixture = {"generator": "make_tiny_phi3.py", "size": size, "seed": seed,
                   "num_layers": SIZES[size]["num_layers"], "stop_rate": stop_rate}
        fixture.update(stop_info)
        with open(os.path.join(folder, FIXTURE), "w", encoding="utf-8", newline="\n") as f:
            f.write(json.dumps(fixture, indent=2, sort_keys=True) + "\n")
    files = [f for f in list_files(folder) if f != MANIFEST]
    with open(os.path.join(folder, MANIFEST), "w", encoding="utf-8", newline="\n") as f:
        for rel in files:
            f.write("%s  %s\n" % (sha256_file(os.path.join(folder, rel)), rel))
    return stop_ids


def _describe(size, seed, stop_rate):
    return "--size %s --seed %d%s" % (size, seed, "" if stop_rate is None else " --stop-rate %r" % stop_rate)


def check(folder, size, seed, stop_rate=None):
    if not os.path.isdir(folder):
        print("check: %s is not a folder" % folder, file=sys.stderr)
        return 1
    tmp = tempfile.mkdtemp(prefix="tiny-phi3-check-")
    try:
        generate(tmp, size, seed, stop_rate)
        want, have = list_files(tmp), list_files(folder)
        bad = []
        for rel in sorted(set(want) | set(have)):
            if rel not in have:
                bad.append("%s (missing)" % rel)
            elif rel not in want:
                bad.append("%s (unexpected file)" % rel)
            elif sha256_file(os.path.join(tmp, rel)) != sha256_file(os.path.join(folder, rel)):
                bad.append("%s (sha256 differs)" % rel)
        if bad:
            for b in bad:
                print("DIFFERS: %s" % b, file=sys.stderr)
            if FIXTURE in have:
                with open(os.path.join(folder, FIXTURE), encoding="utf-8") as f:
                    fx = json.load(f)
                print("(%s has %s: made with %s)" % (folder, FIXTURE, _describe(
                    fx.get("size"), fx.get("seed", -1), fx.get("stop_rate"))), file=sys.stderr)
            return 1
        print("check OK: %d files identical to a fresh %s build" % (len(want), _describe(size, seed, stop_rate)))
        return 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _stop_rate_arg(text):
    try:
        r = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("not a number: %r" % text)
    if not 0 < r <= MAX_STOP_RATE:
        raise argparse.ArgumentTypeError("must be in (0, %g]: %r" % (MAX_STOP_RATE, text))
    return r


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True, help="output model folder")
    ap.add_argument("--size", choices=sorted(SIZES), default="tiny",
                    help="tiny: 2 layers, hidden 32 (the committed test fixture); phi3-mini: Phi-3-mini's 32 "
                         "layers and shapes (~2.3 GB); phi3-mini-4l: phi3-mini's shapes with 4 layers (~0.7 GB)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--stop-rate", type=_stop_rate_arg, default=None, metavar="R",
                    help="make greedy decoding pick '.' (then <|end|>) with probability about R per step, so "
                         "answer lengths are long-tailed, roughly geometric with mean ~1/R (some run to "
                         "max_length: greedy decoding can cycle). R in (0, %g]. Also writes %s. Default: none "
                         "('.' is an ordinary random row; answers rarely stop)" % (MAX_STOP_RATE, FIXTURE))
    ap.add_argument("--check", action="store_true",
                    help="regenerate into a temp folder (same --size, --seed, --stop-rate) and compare sha256 "
                         "of every file with --out")
    args = ap.parse_args(argv)
    if args.check:
        return check(args.out, args.size, args.seed, args.stop_rate)
    stop_ids = generate(args.out, args.size, args.seed, args.stop_rate)
    total = sum(os.path.getsize(os.path.join(args.out, f)) for f in list_files(args.out))
    print("wrote %s (%s): %.2f MB; '.' token id %s" %
          (args.out, _describe(args.size, args.seed, args.stop_rate), total / 1e6, stop_ids))
    return 0


if __name__ == "__main__":
    sys.exit(main())

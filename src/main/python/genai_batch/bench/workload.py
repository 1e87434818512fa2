"""The benchmark's mixed workload: prompts whose token lengths spread log-uniformly.

    python -m genai_batch.bench.workload --model DIR --rows 32 [--seed 0] [--min-tokens 10]
        [--max-tokens 500] --out FILE.json

Each prompt is Phi-3's chat markup ``<|user|>\\n...<|end|>\\n<|assistant|>\\n`` around random
words from a fixed list (no '.', after which the random-weight models stop at once). The target
lengths are stratified over [ln min, ln max] (one per equal slice of the log range, a seeded
point inside it), so that even a few rows cover the range, then shuffled into a seeded arrival
order. Each prompt is grown word by word until the model folder's own tokenizer
(``onnxruntime_genai.Tokenizer``, the one the Java engine uses too) counts exactly its target,
so the lengths are the model's, not an estimate. Deterministic for the same seed, rows and
tokenizer. Runs in its own process (``genai_batch.bench.run`` starts it): loading the model for
its tokenizer holds the weights in memory, which the benchmark's own process should not.

Writes ``{"prompts": [...], "tokens": [...], "targets": [...], "seed": S}`` to ``--out``.
"""
from __future__ import annotations

import argparse
import json
import math
import random

from genai_batch.make_tiny_phi3 import WORDS as CORPUS_WORDS

USER, END, ASSISTANT = "<|user|>\n", "<|end|>\n", "<|assistant|>\n"

# The fixture tokenizer's corpus words (no '.', no digits; most are one piece for it, so a prompt can be
# grown to an exact token count), and a few more.
WORDS = list(dict.fromkeys(CORPUS_WORDS + "river mountain village weather morning evening garden window".split()))
assert not any("." in w for w in WORDS)


def markup(words: list[str], opener: str = "") -> str:
    """Phi-3 chat markup around the words; the assistant's turn starts with `opener`, as when a prompt
    primes the answer. With one shared ending every prompt's first answer tokens would be alike, and
    so would the point where the random fixture model stops: the opener varies it."""
    return USER + " ".join(words) + END + ASSISTANT + opener


def targets(rows: int, lo: int, hi: int, rnd: random.Random) -> list[int]:
    """rows lengths, one per equal slice of [ln lo, ln hi] (a seeded point in each), shuffled."""
    a, b = math.log(lo), math.log(hi)
    out = [min(hi, max(lo, round(math.exp(a + (b - a) * (i + rnd.random()) / rows)))) for i in range(rows)]
    rnd.shuffle(out)
    return out


def grow(target: int, count, rnd: random.Random, opener: str = "") -> list[str]:
    """Words whose marked-up prompt has exactly `target` tokens by `count` (a str -> int)."""
    words: list[str] = []
    n = count(markup(words, opener))
    if n > target:
        raise ValueError(f"the chat markup alone is {n} tokens, more than the target {target}")
    while n < target:
        w = rnd.choice(WORDS)
        m = count(markup(words + [w], opener))
        if m <= target:
            words.append(w)
            n = m
            continue
        # One more word overshoots: the first that lands exactly, else the one that adds least.
        best = None
        for cand in rnd.sample(WORDS, len(WORDS)):
            c = count(markup(words + [cand], opener))
            if c == target:
                best = (c, cand)
                break
            if c > n and (best is None or c < best[0]):
                best = (c, cand)
        if best is None or best[0] > target:
            raise ValueError(f"cannot reach exactly {target} tokens from {n} with the word list")
        words.append(best[1])
        n = best[0]
    return words


def make(tokenizer, rows: int, seed: int = 0, lo: int = 10, hi: int = 500) -> dict:
    rnd = random.Random(seed)
    want = targets(rows, lo, hi, rnd)

    def count(text: str) -> int:
        return len(tokenizer.encode(text))

    prompts = []
    for t in want:
        opener = rnd.choice(WORDS).capitalize()
        prompts.append(markup(grow(t, count, rnd, opener), opener))
    tokens = [count(p) for p in prompts]
    assert not any("." in p for p in prompts)
    return {"prompts": prompts, "tokens": tokens, "targets": want, "seed": seed, "min": lo, "max": hi}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genai_batch.bench.workload")
    p.add_argument("--model", required=True, help="onnxruntime-genai model folder (its tokenizer counts)")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-tokens", type=int, default=10)
    p.add_argument("--max-tokens", type=int, default=500)
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import onnxruntime_genai as og

    tokenizer = og.Tokenizer(og.Model(args.model))
    w = make(tokenizer, args.rows, args.seed, args.min_tokens, args.max_tokens)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(w, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

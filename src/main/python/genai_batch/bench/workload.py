"""The benchmark's generated workloads, counted with the model's own tokenizer.

    python -m genai_batch.bench.workload --model DIR --rows 32 [--seed 0] [--min-tokens 10]
        [--max-tokens 500] --out FILE.json
    python -m genai_batch.bench.workload --kind shared --model DIR --rows 64 [--seed 0] [--templates 3]
        [--min-tokens 20] [--max-tokens 200] [--template-min-tokens 300] [--template-max-tokens 800]
        [--duplicate-share 0.05] --out FILE.json

Mixed (the default): prompts whose token lengths spread log-uniformly. Each prompt is Phi-3's chat
markup ``<|user|>\\n...<|end|>\\n<|assistant|>\\n`` around random
words from a fixed list (no '.', after which the random-weight models stop at once). The target
lengths are stratified over [ln min, ln max] (one per equal slice of the log range, a seeded
point inside it), so that even a few rows cover the range, then shuffled into a seeded arrival
order. Each prompt is grown word by word until the model folder's own tokenizer
(``onnxruntime_genai.Tokenizer``, the one the Java engine uses too) counts exactly its target,
so the lengths are the model's, not an estimate. Deterministic for the same seed, rows and
tokenizer. Runs in its own process (``genai_batch.bench.run`` starts it): loading the model for
its tokenizer holds the weights in memory, which the benchmark's own process should not.

Writes ``{"prompts": [...], "tokens": [...], "targets": [...], "seed": S}`` to ``--out``.

Shared (``--kind shared``, :func:`make_shared`): a nightly evaluation. A few instruction templates of
300-800 tokens (a task line, rules and few-shot examples; even-numbered templates are a ``<|system|>``
turn, odd ones open the user turn), each row a template + its own content of 20-200 tokens (log-uniform,
exact) + ``<|end|>\\n<|assistant|>\\n`` + an opener word; the templates' rows interleaved in a seeded
arrival order; about 5% of rows exact copies of another row at seeded positions. Every template is a
literal token prefix of its rows (checked: a row whose tokens do not start with all but at most the last
2 of its template's tokens is an error). Writes the prompts and tokens as mixed does, plus per row
``template_of``, ``content_tokens``, ``duplicate_of`` (the first row with the same text, or null),
``template_prefix_tokens`` (leading tokens shared with its template), ``shared_prefix_tokens`` (the most
leading tokens shared with another, different row of its template); per template its form, tokens, rows
and ``common_prefix_tokens`` (what all its rows share); ``duplicates``; ``least_computed_tokens`` (the
prompt tokens left to compute, in arrival order, if every row reused the longest prefix of an earlier
row, token-exact, and copies computed nothing).
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


def grow(target: int, count, rnd: random.Random, opener: str = "", render=None) -> list[str]:
    """Words whose marked-up prompt has exactly `target` tokens by `count` (a str -> int); render(words)
    makes the prompt (default: markup(words, opener))."""
    if render is None:
        def render(ws: list[str]) -> str:
            return markup(ws, opener)
    words: list[str] = []
    n = count(render(words))
    if n > target:
        raise ValueError(f"the chat markup alone is {n} tokens, more than the target {target}")
    while n < target:
        w = rnd.choice(WORDS)
        m = count(render(words + [w]))
        if m <= target:
            words.append(w)
            n = m
            continue
        # One more word overshoots: the first that lands exactly, else the one that adds least.
        best = None
        for cand in rnd.sample(WORDS, len(WORDS)):
            c = count(render(words + [cand]))
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


# --------------------------------------------------------------------------------------------------
# The shared-prefix workload (--kind shared): a nightly evaluation's shape
# --------------------------------------------------------------------------------------------------

SYSTEM = "<|system|>\n"
# Template forms: the template as a <|system|> turn (row content is the whole user turn), or at the start
# of the user turn (row content follows "Input:" on a new line). Both end on a token boundary: a special
# token, or a newline, after which the fixture tokenizer starts a fresh piece.
FORMS = ("system", "user")
TEMPLATE_ENDS = {"system": END + USER, "user": "\n\nInput:\n"}
TEMPLATE_STARTS = {"system": SYSTEM, "user": USER}
LABELS = ("good", "bad", "yes", "no", "true", "false", "high", "low")


def template_units(rnd: random.Random, index: int) -> list[str]:
    """Pieces of an instruction template, in order: a task line, rules, then few-shot examples (input
    words, an output label, a reason), more than any template needs; cut to a token budget by the caller.
    No '.' anywhere (the random-weight models stop after one)."""
    units = [f"Task {index + 1}:"] + [" " + w for w in rnd.sample(WORDS, 24)]
    for r in range(1, 5):
        units.append(f"\nRule {r}:")
        units += [" " + rnd.choice(WORDS) for _ in range(rnd.randint(8, 20))]
    units.append("\nAnswer with one label from " + ", ".join(rnd.sample(LABELS, 3)) + ", then a reason")
    for e in range(1, 60):
        units.append(f"\n\nExample {e}\nInput:")
        units += [" " + rnd.choice(WORDS) for _ in range(rnd.randint(10, 30))]
        units.append("\nOutput: " + rnd.choice(LABELS) + ",")
        units += [" " + rnd.choice(WORDS) for _ in range(rnd.randint(4, 10))]
    return units


def make_template(count, rnd: random.Random, index: int, form: str, target: int) -> str:
    """A template (turn start + instructions + examples + the form's end) of at most `target` tokens and
    as near it as whole units allow (a binary search over how many units to keep)."""
    units = template_units(rnd, index)
    start, end = TEMPLATE_STARTS[form], TEMPLATE_ENDS[form]

    def text(k: int) -> str:
        return start + "".join(units[:k]) + end

    if count(text(len(units))) < target:
        raise ValueError(f"template units give {count(text(len(units)))} tokens, fewer than the target {target}")
    lo, hi = 1, len(units)  # count(text(lo)) <= target assumed; the largest k that fits
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count(text(mid)) <= target:
            lo = mid
        else:
            hi = mid - 1
    return text(lo)


def common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def make_shared(tokenizer, rows: int, seed: int = 0, templates: int = 3, lo: int = 20, hi: int = 200,
                template_lo: int = 300, template_hi: int = 800, duplicate_share: float = 0.05) -> dict:
    """A nightly evaluation's prompts: `templates` instruction templates of template_lo-template_hi tokens
    (instructions and few-shot examples; even-numbered ones a <|system|> turn, odd ones the start of the
    user turn), each row a template + its own content of lo-hi tokens (log-uniform, exact by the
    tokenizer) + ``<|end|>\n<|assistant|>\n`` + an opener word. Rows of the templates are interleaved in a
    seeded arrival order; about duplicate_share of the rows (at least one from 8 rows) are exact copies of
    another row (same text, another id) at seeded positions. Checks that every row's tokens start with
    its template's tokens (all but at most the last 2), and records per row how many leading tokens it
    shares with its template and with the other rows of that template."""
    if templates < 1 or rows < templates:
        raise ValueError(f"--rows {rows} must be at least --templates {templates} (>= 1)")
    rnd = random.Random(seed)
    duplicates = 0 if rows < 8 else max(1, round(rows * duplicate_share))
    unique = rows - duplicates

    def count(text: str) -> int:
        return len(tokenizer.encode(text))

    forms = [FORMS[i % len(FORMS)] for i in range(templates)]
    template_targets = targets(templates, template_lo, template_hi, rnd)
    texts = [make_template(count, rnd, i, forms[i], t) for i, t in enumerate(template_targets)]
    template_ids = [list(tokenizer.encode(t)) for t in texts]
    # each template gets unique // templates rows or one more, in a seeded arrival order
    owner = [i % templates for i in range(unique)]
    rnd.shuffle(owner)
    content_targets = targets(unique, lo, hi, rnd)
    prompts, content_tokens = [], []
    for k, t in zip(owner, content_targets):
        opener = rnd.choice(WORDS).capitalize()
        head, tail = texts[k], END + ASSISTANT + opener

        def render(ws: list[str], head=head, tail=tail) -> str:
            return head + " ".join(ws) + tail

        base = count(render([]))
        words = grow(base + t, count, rnd, render=render)
        prompts.append(render(words))
        content_tokens.append(count(render(words)) - base)
    for _ in range(duplicates):  # a copy of a seeded row, at a seeded position
        src = rnd.randrange(len(prompts))
        at = rnd.randrange(len(prompts) + 1)
        prompts.insert(at, prompts[src])
        owner.insert(at, owner[src])
        content_tokens.insert(at, content_tokens[src])
    # Every row that repeats an earlier row's text points at the first row with that text.
    first: dict[str, int] = {}
    duplicate_of: list[int | None] = []
    for i, p in enumerate(prompts):
        duplicate_of.append(first.get(p))
        first.setdefault(p, i)
    ids = [list(tokenizer.encode(p)) for p in prompts]
    tokens = [len(x) for x in ids]
    template_prefix = [common_prefix(ids[i], template_ids[owner[i]]) for i in range(rows)]
    bad = [i for i in range(rows) if template_prefix[i] < len(template_ids[owner[i]]) - 2]
    if bad:
        i = bad[0]
        raise ValueError(f"row {i}: its tokens share only {template_prefix[i]} leading tokens with its template's "
                         f"{len(template_ids[owner[i]])}: the tokenizer does not keep the template a token prefix "
                         f"({len(bad)} rows)")
    # Leading tokens a row shares with the other rows of its template (identical rows left out: they
    # share everything), the most with any one of them; and what all rows of a template share.
    shared = []
    for i in range(rows):
        others = [common_prefix(ids[i], ids[j]) for j in range(rows)
                  if j != i and owner[j] == owner[i] and prompts[j] != prompts[i]]
        shared.append(max(others) if others else 0)
    common = []
    for k in range(templates):
        members = [ids[i] for i in range(rows) if owner[i] == k]
        common.append(min(common_prefix(members[0], m) for m in members[1:]) if len(members) > 1 else
                      len(members[0]))
    # The least prompt tokens any prefix reuse could compute, in arrival order: a row computes what it
    # does not share with an earlier row (token-exact, no block rounding); an identical row, nothing.
    least = 0
    for i in range(rows):
        if duplicate_of[i] is not None:
            continue
        least += tokens[i] - max((common_prefix(ids[i], ids[j]) for j in range(i)), default=0)
    assert not any("." in p for p in prompts)
    return {
        "kind": "shared", "prompts": prompts, "tokens": tokens, "seed": seed, "min": lo, "max": hi,
        "template_of": owner, "content_tokens": content_tokens, "duplicate_of": duplicate_of,
        "template_prefix_tokens": template_prefix, "shared_prefix_tokens": shared,
        "templates": [{"form": forms[k], "tokens": len(template_ids[k]), "target": template_targets[k],
                       "rows": owner.count(k), "common_prefix_tokens": common[k],
                       "text_chars": len(texts[k])} for k in range(templates)],
        "template_texts": texts,
        "duplicates": sum(d is not None for d in duplicate_of),
        "least_computed_tokens": least,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m genai_batch.bench.workload")
    p.add_argument("--model", required=True, help="onnxruntime-genai model folder (its tokenizer counts)")
    p.add_argument("--kind", choices=("mixed", "shared"), default="mixed",
                   help="mixed (default): log-uniform prompt lengths; shared: rows of a few instruction templates")
    p.add_argument("--rows", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-tokens", type=int, help="shortest prompt (mixed, default 10) or row content (shared, "
                   "default 20)")
    p.add_argument("--max-tokens", type=int, help="longest prompt (mixed, default 500) or row content (shared, "
                   "default 200)")
    p.add_argument("--templates", type=int, default=3, help="shared: instruction templates (default 3)")
    p.add_argument("--template-min-tokens", type=int, default=300, help="shared: shortest template (default 300)")
    p.add_argument("--template-max-tokens", type=int, default=800, help="shared: longest template (default 800)")
    p.add_argument("--duplicate-share", type=float, default=0.05, help="shared: share of rows that copy another "
                   "row exactly (default 0.05)")
    p.add_argument("--out", required=True)
    args = p.parse_args(argv)
    import onnxruntime_genai as og

    tokenizer = og.Tokenizer(og.Model(args.model))
    if args.kind == "shared":
        w = make_shared(tokenizer, args.rows, args.seed, args.templates,
                        20 if args.min_tokens is None else args.min_tokens,
                        200 if args.max_tokens is None else args.max_tokens,
                        args.template_min_tokens, args.template_max_tokens, args.duplicate_share)
    else:
        w = make(tokenizer, args.rows, args.seed, 10 if args.min_tokens is None else args.min_tokens,
                 500 if args.max_tokens is None else args.max_tokens)
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(w, f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

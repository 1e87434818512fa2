"""Writes a prompt set of ordinary rows and hostile cells, as JSON lines, for the job to take whole.

    make_hostile_prompts.py OUT.jsonl [--ordinary-only]

Rows 1 to 16 are ordinary prompts with no options of their own. Rows 17 to 23 each hold one hostile
cell: a catastrophic regex cut by a stop string, ten thousand stop strings, a 1 MB response format,
n = 64 completions of 4096 tokens with sampling, a 2 MB prompt, a regex nested 6000 groups deep, a
100 000-character stop string. The job reads the options with --stop-column stop --n-column n
--max-tokens-column max_tokens --temperature-column temperature --response-format-column
response_format. Prints {"rows": N, "hostile": {id: what}} as its last line.
"""
import json
import sys

HOSTILE = {
    17: ("catastrophic regex cut by a stop string", {"response_format": "regex:(a|a)*b", "stop": ["aaa"]}),
    18: ("ten thousand stop strings", {"stop": [f"stop{i}" for i in range(10_000)]}),
    19: ("a 1 MB response format",
         {"response_format": json.dumps({"type": "object", "description": "x" * 1_000_000})}),
    20: ("n = 64 completions of 4096 tokens, sampled", {"n": 64, "max_tokens": 4096, "temperature": 1.0}),
    21: ("a 2 MB prompt", {"prompt": "word " * 400_000}),
    22: ("a regex nested 6000 groups deep", {"response_format": "regex:" + "(" * 6000 + "a" + ")" * 6000}),
    23: ("a 100 000-character stop string", {"stop": ["s" * 100_000]}),
}


def rows(ordinary_only):
    for i in range(1, 17):
        yield {"id": i, "prompt": f"Ordinary prompt number {i}: say something short."}
    if ordinary_only:
        return
    for i, (_, cells) in HOSTILE.items():
        yield {"id": i, "prompt": f"Hostile prompt number {i}.", **cells}


def main(out, ordinary_only):
    n = 0
    with open(out, "w", encoding="utf-8") as f:
        for row in rows(ordinary_only):
            f.write(json.dumps(row) + "\n")
            n += 1
    hostile = {} if ordinary_only else {i: what for i, (what, _) in HOSTILE.items()}
    print(json.dumps({"rows": n, "hostile": hostile}))


if __name__ == "__main__":
    main(sys.argv[1], "--ordinary-only" in sys.argv[2:])

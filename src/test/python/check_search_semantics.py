#!/usr/bin/env python3
"""Check the pyfunc wrapper's search-option parsing and token budget against the shared cases.

Usage::

    python src/test/python/check_search_semantics.py [CASES_JSON]

CASES_JSON defaults to src/test/resources/search-semantics.json (the contract the Java engine is
held to as well, see docs/search-options.md). Runs every case through
phi3_pyfunc.parse_search_options / merge_search_options / token_budget -- pure functions, no model
and no onnxruntime-genai needed -- and prints one JSON object: {"version", "checked", "failures":
[{"section", "name", "problem"}]}. Exits 1 when a case fails.
"""

import json
import os
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
sys.path.insert(0, os.path.join(REPO, "src", "main", "python"))

from genai_batch.phi3_pyfunc import (  # noqa: E402 - after the path is set
    merge_search_options,
    parse_search_options,
    token_budget,
)

WHOLE = {"max_new_tokens", "max_length", "top_k", "seed", "min_length"}


def typed_like(actual: dict, expect: dict) -> str | None:
    """None when actual equals expect, whole-number options as ints and the others as floats."""
    if actual != expect:
        return f"got {actual!r}, expected {expect!r}"
    for key, value in actual.items():
        want = bool if key == "do_sample" else int if key in WHOLE else float
        if type(value) is not want:
            return f"{key} is {type(value).__name__} {value!r}, expected a {want.__name__}"
    return None


def refusal_problem(case: dict, e: ValueError) -> str | None:
    """None when the case expects this refusal."""
    if "error" not in case:
        return f"refused: {e}"
    return None if case["error"] in str(e) else f"refused with {str(e)!r}, expected {case['error']!r}"


def merged(case: dict) -> dict:
    layers = case["layers"] if "layers" in case else [case["input"]]
    return merge_search_options(*(parse_search_options(layer) for layer in layers))


def check_option(case: dict) -> str | None:
    try:
        actual = merged(case)
    except ValueError as e:
        return refusal_problem(case, e)
    if "error" in case:
        return f"accepted as {actual!r}, expected an error with {case['error']!r}"
    return typed_like(actual, case["expect"])


def check_budget(case: dict) -> str | None:
    if "layers" in case:
        opts = merged(case)
        length, new_tokens = opts.get("max_length"), opts.get("max_new_tokens")
    else:
        length, new_tokens = case["L"], case["N"]
    try:
        max_length, new = token_budget(case["P"], case["C"], length, new_tokens, case["D"])
    except ValueError as e:
        return refusal_problem(case, e)
    if "error" in case:
        return f"gave maxLength {max_length}, newTokens {new}; expected an error with {case['error']!r}"
    got = {"maxLength": max_length, "newTokens": new}
    return None if got == case["expect"] else f"got {got}, expected {case['expect']}"


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(REPO, "src", "test", "resources", "search-semantics.json")
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)
    failures = []
    checked = 0
    for section, check in (("options", check_option), ("budget", check_budget)):
        for case in cases[section]:
            if case.get("only", "python") != "python":
                continue
            checked += 1
            problem = check(case)
            if problem:
                failures.append({"section": section, "name": case["name"], "problem": problem})
    print(json.dumps({"version": cases["version"], "checked": checked, "failures": failures}, indent=1))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

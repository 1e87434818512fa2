"""Writes the Jupyter (.ipynb) twin of a Databricks-format Scala notebook, or checks that it is current.

A Databricks notebook source file starts with ``// Databricks notebook source``; its cells are
separated by ``// COMMAND ----------``; a markdown cell is a run of ``// MAGIC`` lines whose first
one is ``// MAGIC %md``. The .ipynb gets the same cells, in order, for a Scala kernel (Almond's
kernel name ``scala``), so Jupyter users and Databricks users run the same code.

    .venv/bin/python src/test/notebooks-runner/databricks_to_ipynb.py notebooks/score_prompts_scala.scala
    .venv/bin/python src/test/notebooks-runner/databricks_to_ipynb.py --check notebooks/score_prompts_scala.scala

The first writes ``notebooks/score_prompts_scala.ipynb``; the second (run by NotebooksIT) exits 1
when that file differs from what the first would write.
"""

import argparse
import json
import sys
from pathlib import Path

HEADER = "// Databricks notebook source"
SEPARATOR = "// COMMAND ----------"
MAGIC = "// MAGIC"

KERNELSPEC = {"display_name": "Scala 2.13", "language": "scala", "name": "scala"}
LANGUAGE_INFO = {
    "codemirror_mode": "text/x-scala",
    "file_extension": ".sc",
    "mimetype": "text/x-scala",
    "name": "scala",
    "nbconvert_exporter": "script",
    "version": "2.13",
}


def cells_of(source: str) -> list:
    lines = source.splitlines()
    if not lines or lines[0].strip() != HEADER:
        raise ValueError(f"not a Databricks notebook source file: the first line is not {HEADER!r}")
    chunks, current = [], []
    for line in lines[1:]:
        if line.strip() == SEPARATOR:
            chunks.append(current)
            current = []
        else:
            current.append(line)
    chunks.append(current)

    cells = []
    for chunk in chunks:
        text = "\n".join(chunk).strip("\n")
        if not text.strip():
            continue
        body = text.splitlines()
        if all(l.startswith(MAGIC) for l in body):
            magic = [l[len(MAGIC) + 1:] if l.startswith(MAGIC + " ") else l[len(MAGIC):] for l in body]
            if magic[0].strip() != "%md":
                raise ValueError(f"only %md magic cells are supported, got {magic[0]!r}")
            cells.append(("markdown", "\n".join(magic[1:]).strip("\n")))
        else:
            cells.append(("code", text))
    return cells


def notebook_of(source: str) -> dict:
    cells = []
    for i, (kind, text) in enumerate(cells_of(source)):
        cell = {"cell_type": kind, "id": f"cell-{i:02d}", "metadata": {}, "source": text.splitlines(keepends=True)}
        if kind == "code":
            cell["execution_count"] = None
            cell["outputs"] = []
        cells.append(cell)
    return {
        "cells": cells,
        "metadata": {"kernelspec": KERNELSPEC, "language_info": LANGUAGE_INFO},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def render(nb: dict) -> str:
    # nbformat's own layout: one-space indent, sorted keys, a final newline.
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="the Databricks-format .scala notebook")
    parser.add_argument("--output", type=Path, help="default: the source with the .ipynb suffix")
    parser.add_argument("--check", action="store_true", help="exit 1 if the output is missing or out of date")
    args = parser.parse_args(argv)

    output = args.output or args.source.with_suffix(".ipynb")
    wanted = render(notebook_of(args.source.read_text(encoding="utf-8")))
    if args.check:
        current = output.read_text(encoding="utf-8") if output.exists() else None
        if current != wanted:
            print(f"{output} is out of date with {args.source}: run "
                  f"src/test/notebooks-runner/databricks_to_ipynb.py {args.source}", file=sys.stderr)
            return 1
        print(f"{output} is up to date")
        return 0
    output.write_text(wanted, encoding="utf-8")
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

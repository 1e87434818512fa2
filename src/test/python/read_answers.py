"""Reads a genai-batch Parquet output and prints {id: value} as JSON, value from the request's "column"
(default "response"). Request on stdin: {"output": DIR[, "column": NAME]}."""
import json
import sys

import pyarrow.parquet as pq

req = json.load(sys.stdin)
column = req.get("column", "response")
table = pq.read_table(req["output"], columns=["id", column])
print(json.dumps({str(i): v for i, v in zip(table.column("id").to_pylist(), table.column(column).to_pylist())}))

"""Reads a genai-batch Parquet output and prints {id: response} as JSON (request on stdin: {"output": DIR})."""
import json
import sys

import pyarrow.parquet as pq

req = json.load(sys.stdin)
table = pq.read_table(req["output"], columns=["id", "response"])
print(json.dumps({str(i): r for i, r in zip(table.column("id").to_pylist(), table.column("response").to_pylist())}))

"""Reads a genai-batch Parquet output and prints {id: value} as JSON, value from the request's "column"
(default "response"); with "count", prints {"rows": N} instead, every row counted (an id written twice, twice).
Request on stdin: {"output": DIR[, "column": NAME][, "count": true]}."""
import json
import sys

import pyarrow.parquet as pq

req = json.load(sys.stdin)
if req.get("count"):
    print(json.dumps({"rows": pq.read_table(req["output"], columns=["id"]).num_rows}))
    sys.exit(0)
column = req.get("column", "response")
table = pq.read_table(req["output"], columns=["id", column])
print(json.dumps({str(i): v for i, v in zip(table.column("id").to_pylist(), table.column(column).to_pylist())}))

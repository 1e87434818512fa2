"""Reads a run's traces back with MLflow's own Python client, for the Java trace tests.

stdin: {"run_id": ...}; MLFLOW_TRACKING_URI (and credentials) from the env.
stdout: JSON with one entry per trace of the run: its id, state, request and response previews, the
trace's token usage, and its one span's name, type, inputs, outputs, attributes and status message.
"""
import json
import sys

import mlflow
from mlflow import MlflowClient


def main():
    req = json.load(sys.stdin)
    run = MlflowClient().get_run(req["run_id"])
    traces = mlflow.search_traces(
        run_id=req["run_id"], locations=[run.info.experiment_id], return_type="list", max_results=100000
    )
    out = []
    for t in traces:
        span = t.data.spans[0]
        out.append({
            "trace_id": t.info.trace_id,
            "state": str(t.info.state),
            "request_preview": t.info.request_preview,
            "response_preview": t.info.response_preview,
            "token_usage": t.info.token_usage,
            "spans": len(t.data.spans),
            "name": span.name,
            "span_type": span.span_type,
            "inputs": span.inputs,
            "outputs": span.outputs,
            "attributes": {k: v for k, v in span.attributes.items()},
            "status": str(span.status.status_code),
            "status_message": span.status.description,
            "duration_ms": (span.end_time_ns - span.start_time_ns) / 1e6,
        })
    print(json.dumps({"traces": out}, default=str))


if __name__ == "__main__":
    main()

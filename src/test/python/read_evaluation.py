"""Reads a nightly evaluation back the way an MLflow 3 user finds it, for the Java tests.

stdin: {"experiment": NAME, "run_ids": [...], "evaluate": [ARGS...] (optional)}; MLFLOW_TRACKING_URI
from the env. With "evaluate", first runs genai_batch.evaluate_run with those arguments (as
jobs/nightly.sh does) and reports its exit code.
stdout: JSON: "evaluate_rc"; "datasets": the experiment's evaluation datasets (id, name, tags, their
records' inputs and expectations, via mlflow.genai.datasets); "runs": per run id its status,
metrics, input datasets (name, digest, source type, source) and its traces' assessments, keyed by the
trace's row id: per assessment name the list of {kind, value, source_type, source_id}.
"""
import contextlib
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "main", "python"))

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.genai.datasets import search_datasets  # noqa: E402


def assessments(trace):
    out = {}
    for a in trace.info.assessments or []:
        kind = "expectation" if a.expectation is not None else "feedback"
        value = a.expectation.value if a.expectation is not None else a.feedback.value
        out.setdefault(a.name, []).append({"kind": kind, "value": value, "source_type": str(a.source.source_type),
                                            "source_id": a.source.source_id})
    return out


def main():
    req = json.load(sys.stdin)
    result = {}
    if req.get("evaluate") is not None:
        from genai_batch import evaluate_run

        # Only this script's JSON goes to stdout.
        with contextlib.redirect_stdout(sys.stderr):
            result["evaluate_rc"] = evaluate_run.main(req["evaluate"])
    client = MlflowClient()
    exp = client.get_experiment_by_name(req["experiment"])
    result["datasets"] = []
    for d in search_datasets(experiment_ids=[exp.experiment_id]):
        records = d.to_df()
        result["datasets"].append({"id": d.dataset_id, "name": d.name, "tags": d.tags, "records": [
            {"inputs": r["inputs"], "expectations": r["expectations"]} for _, r in records.iterrows()]})
    result["runs"] = {}
    for run_id in req["run_ids"]:
        run = client.get_run(run_id)
        traces = mlflow.search_traces(run_id=run_id, locations=[exp.experiment_id], return_type="list",
                                      max_results=100000)
        result["runs"][run_id] = {
            "status": run.info.status,
            "metrics": run.data.metrics,
            "inputs": [{"name": i.dataset.name, "digest": i.dataset.digest, "source_type": i.dataset.source_type,
                        "source": i.dataset.source, "context": {t.key: t.value for t in i.tags}}
                       for i in run.inputs.dataset_inputs],
            "traces": {t.data.spans[0].attributes.get("genai_batch.row_id"): assessments(t) for t in traces},
        }
    print(json.dumps(result, default=str))


if __name__ == "__main__":
    main()

"""Reads an MLflow 3 logged model back with MLflow's Python client, for the Java tracking tests.

stdin: {"model_id": ..., "run_id": ...}; MLFLOW_TRACKING_URI from the env.
stdout: JSON with the model's metrics (key, value, run_id, dataset_name, dataset_digest) and the
model ids among the run's inputs.
"""
import json
import sys

import mlflow
from mlflow import MlflowClient


def main():
    req = json.load(sys.stdin)
    model = mlflow.get_logged_model(req["model_id"])
    run = MlflowClient().get_run(req["run_id"])
    inputs = run.inputs.model_inputs or []
    print(json.dumps({
        "metrics": [
            {"key": m.key, "value": m.value, "run_id": m.run_id, "dataset_name": m.dataset_name,
             "dataset_digest": m.dataset_digest}
            for m in (model.metrics or [])
        ],
        "run_model_inputs": [m.model_id for m in inputs],
    }))


if __name__ == "__main__":
    main()

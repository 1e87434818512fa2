"""Reads an MLflow run back with MLflow's own Python client, for the Java tracking tests.

stdin: {"run_id": ..., "download_dir": DIR}; MLFLOW_TRACKING_URI (and credentials) from the env.
stdout: JSON with status, params, metrics, tags, the input datasets, every artifact path, the
results table as mlflow.load_table reads it, and local copies of the plots.
"""
import json
import os
import sys

import mlflow
from mlflow import MlflowClient


def walk(client, run_id, path=None):
    out = []
    for f in client.list_artifacts(run_id, path):
        if f.is_dir:
            out.extend(walk(client, run_id, f.path))
        else:
            out.append(f.path)
    return out


def main():
    req = json.load(sys.stdin)
    client = MlflowClient()
    run = client.get_run(req["run_id"])
    datasets = []
    for d in run.inputs.dataset_inputs:
        datasets.append({
            "name": d.dataset.name, "digest": d.dataset.digest, "source_type": d.dataset.source_type,
            "source": d.dataset.source, "schema": json.loads(d.dataset.schema),
            "profile": json.loads(d.dataset.profile), "tags": {t.key: t.value for t in d.tags},
        })
    artifacts = walk(client, req["run_id"])
    mlflow.set_experiment(experiment_id=run.info.experiment_id)
    table = mlflow.load_table("results_sample.json", run_ids=[req["run_id"]])
    plots = {}
    for p in artifacts:
        if p.endswith(".png"):
            plots[p] = client.download_artifacts(req["run_id"], p, req["download_dir"])
    texts = {}
    for p in artifacts:
        if not p.endswith(".png"):
            local = client.download_artifacts(req["run_id"], p, req["download_dir"])
            with open(local, encoding="utf-8") as f:
                texts[p] = f.read()
    json.dump({
        "status": run.info.status, "params": run.data.params, "metrics": run.data.metrics,
        "tags": run.data.tags, "datasets": datasets, "artifacts": artifacts,
        "table_columns": list(table.columns), "table_rows": len(table),
        "table_first_response": None if len(table) == 0 else table.iloc[0]["response"],
        "plots": plots, "texts": texts,
        "progress_rows": [m.value for m in sorted(client.get_metric_history(req["run_id"], "progress_rows"),
                                                  key=lambda m: m.step)],
    }, sys.stdout, default=str)


if __name__ == "__main__":
    main()

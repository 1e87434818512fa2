"""Logs the tiny model as a registered pyfunc model with MLflow 2's API, for OldServersIT:
genai_batch.log_model is written for MLflow 3 (logged models, which a 2.x server lacks).

Run with the 2.x venv's Python (.venv-mlflow2). stdin: {"model_dir": ..., "name": ...};
MLFLOW_TRACKING_URI from the env. stdout: {"run_id": ..., "model_uri": "models:/NAME/VERSION"}.
"""
import contextlib
import json
import sys

import mlflow
import mlflow.pyfunc

# The artifact key genai-batch looks for (io.genaibatch.mlflow.MlModel.ONNX_ARTIFACT_KEY).
ONNX_ARTIFACT_KEY = "phi3-mini-onnx"


class JavaScored(mlflow.pyfunc.PythonModel):
    """Never loaded here: genai-batch reads the MLmodel and the ONNX folder; it runs no Python."""

    def predict(self, context, model_input, params=None):
        raise NotImplementedError("genai-batch scores this model in Java")


def main():
    req = json.load(sys.stdin)
    mlflow.set_experiment("models")
    # MLflow prints the run's link on stdout, which carries this script's JSON answer.
    with contextlib.redirect_stdout(sys.stderr), mlflow.start_run() as run:
        # pip_requirements given: MLflow would otherwise load the model in a subprocess to infer them.
        info = mlflow.pyfunc.log_model(artifact_path="model", python_model=JavaScored(),
                                       artifacts={ONNX_ARTIFACT_KEY: req["model_dir"]},
                                       pip_requirements=["mlflow"], registered_model_name=req["name"])
    print(json.dumps({"run_id": run.info.run_id,
                      "model_uri": f"models:/{req['name']}/{info.registered_model_version}"}))


if __name__ == "__main__":
    main()

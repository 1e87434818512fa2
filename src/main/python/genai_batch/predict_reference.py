"""Reference predictions from MLflow's own pyfunc loader, for the Java tests to compare against.

Reads one JSON request on stdin and prints one JSON list on stdout (the last line):

  {"model_uri": "models:/NAME@ALIAS" | "runs:/..." | "models:/m-..." | a local path,
   "prompts": ["...", ...]}                       -> ["answer", ...]
  {"model_uri": ..., "messages": [[{"role": .., "content": ..}, ...], ...],
   "max_tokens": N?, "temperature": T?, "stop": [...]?, "n": N?}
                                                   -> [chat.completion dict, ...]

Optional keys: "tracking_uri" (else MLFLOW_TRACKING_URI), "model_config" (overrides the logged
model_config at load, e.g. {"max_new_tokens": 8}).

It does what a Python user of the model would do:
mlflow.pyfunc.load_model(uri).predict(pd.DataFrame({"prompt": prompts})).
"""
from __future__ import annotations

import json
import sys


def _jsonable(v):
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v


def predict(request: dict) -> list:
    import mlflow
    import pandas as pd

    if request.get("tracking_uri"):
        mlflow.set_tracking_uri(request["tracking_uri"])
    model = mlflow.pyfunc.load_model(request["model_uri"], model_config=request.get("model_config"))
    if "messages" in request:
        rows = {"messages": request["messages"]}
        for key in ("temperature", "max_tokens", "stop", "n"):
            if request.get(key) is not None:
                rows[key] = [request[key]] * len(request["messages"])
        frame = pd.DataFrame(rows)
    else:
        frame = pd.DataFrame({"prompt": list(request["prompts"])})
    out = model.predict(frame)
    if hasattr(out, "tolist"):
        out = out.tolist()
    return [_jsonable(o) for o in out]


def main() -> int:
    request = json.load(sys.stdin)
    result = predict(request)
    sys.stdout.flush()
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())

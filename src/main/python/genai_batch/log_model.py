"""Logs an onnxruntime-genai model folder (Phi-3 and alike) to MLflow as a pyfunc model.

The same steps as the MLflow + Phi-3 tutorial's custom Python wrapper, as a function and a CLI:

    python -m genai_batch.log_model --model-dir DIR [--chat] [--name model] \
        [--register NAME] [--alias champion] [--tracking-uri URI] [--experiment EXP] \
        [--max-new-tokens N] [--max-length N] [--temperature T] [--top-p P] [--top-k K] \
        [--do-sample] [--model-config JSON]

(run with src/main/python on PYTHONPATH). The last line on stdout is a JSON object:
{"run_id", "model_id", "model_uri", "registered_model", "version", "alias", "artifact_path", ...}.

The model folder (the one that holds genai_config.json) is logged as the pyfunc artifact
``phi3-mini-onnx``, at ``artifacts/<folder name>/`` inside the logged model. Its weights are
copied once, by the upload to the store (mlflow.pyfunc.log_model copies a folder twice: into a
temporary saved model, then to the store), so logging a 2.7 GB folder takes about one copy of it.
The genai_batch package travels with the model (``code_paths``), so the wrapper classes import in
a fresh Python at load time.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shutil
import sys
import tempfile
from importlib import metadata as importlib_metadata
from typing import Any

import mlflow
import pandas as pd
from mlflow.entities import LoggedModelOutput, LoggedModelStatus
from mlflow.models import ModelSignature
from mlflow.types import DataType
from mlflow.types.schema import Array, ColSpec, Object, Property, Schema

from genai_batch.phi3_pyfunc import ARTIFACT_KEY, Phi3ChatModel, Phi3Model

LOG = logging.getLogger(__name__)
PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# The modules the logged model needs at load time, shipped as code/genai_batch/ (code_paths).
CODE_FILES = ("__init__.py", "phi3_pyfunc.py")

PROMPT_EXAMPLE = "<|user|>\nWhat is MLflow?<|end|>\n<|assistant|>\n"
CHAT_EXAMPLE_MESSAGES = [{"role": "user", "content": "What is MLflow?"}]

DEFAULT_SEARCH = {"max_length": 300, "do_sample": False}


def prompt_signature() -> ModelSignature:
    """The tutorial's signature: input column prompt (string), output a string."""
    return ModelSignature(
        inputs=Schema([ColSpec(DataType.string, "prompt")]),
        outputs=Schema([ColSpec(DataType.string)]),
    )


def chat_signature() -> ModelSignature:
    """OpenAI-style llm/v1/chat: request and chat.completion response."""
    inputs = Schema(
        [
            ColSpec(
                Array(
                    Object(
                        [
                            Property("role", DataType.string),
                            Property("content", DataType.string),
                            Property("name", DataType.string, required=False),
                        ]
                    )
                ),
                "messages",
            ),
            ColSpec(DataType.double, "temperature", required=False),
            ColSpec(DataType.long, "max_tokens", required=False),
            ColSpec(Array(DataType.string), "stop", required=False),
            ColSpec(DataType.long, "n", required=False),
            ColSpec(DataType.boolean, "stream", required=False),
        ]
    )
    outputs = Schema(
        [
            ColSpec(DataType.string, "id"),
            ColSpec(DataType.string, "object"),
            ColSpec(DataType.long, "created"),
            ColSpec(DataType.string, "model"),
            ColSpec(
                Array(
                    Object(
                        [
                            Property("index", DataType.long),
                            Property(
                                "message",
                                Object(
                                    [
                                        Property("role", DataType.string),
                                        Property("content", DataType.string),
                                    ]
                                ),
                            ),
                            Property("finish_reason", DataType.string),
                        ]
                    )
                ),
                "choices",
            ),
            ColSpec(
                Object(
                    [
                        Property("prompt_tokens", DataType.long),
                        Property("completion_tokens", DataType.long),
                        Property("total_tokens", DataType.long),
                    ]
                ),
                "usage",
            ),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def stage_code_paths(tmp: str) -> str:
    """Writes tmp/genai_batch/ holding only the modules the logged model needs at load time
    (CODE_FILES) and returns that folder, for log_model's code_paths: MLflow copies it to the
    model's code/genai_batch/ and puts code/ on sys.path when it loads the model."""
    pkg = os.path.join(tmp, "genai_batch")
    os.makedirs(pkg)
    for f in CODE_FILES:
        shutil.copy2(os.path.join(PACKAGE_DIR, f), os.path.join(pkg, f))
    return pkg


def pinned_requirements() -> list[str]:
    """pip requirements pinned to what this Python has installed."""
    reqs = []
    for dist in ("mlflow", "onnxruntime-genai", "onnxruntime", "numpy", "pandas"):
        try:
            reqs.append(f"{dist}=={importlib_metadata.version(dist)}")
        except importlib_metadata.PackageNotFoundError:
            reqs.append(dist)
    return reqs


def search_config(
    model_config: dict | None = None,
    *,
    max_new_tokens: int | None = None,
    max_length: int | None = None,
    temperature: float | None = None,
    top_p: float | None = None,
    top_k: int | None = None,
    do_sample: bool | None = None,
) -> dict:
    """The model_config to log: DEFAULT_SEARCH unless a length is given, overlaid with the rest."""
    cfg: dict[str, Any] = dict(model_config or {})
    for key, value in (
        ("max_new_tokens", max_new_tokens),
        ("max_length", max_length),
        ("temperature", temperature),
        ("top_p", top_p),
        ("top_k", top_k),
        ("do_sample", do_sample),
    ):
        if value is not None:
            cfg[key] = value
    if "max_length" not in cfg and "max_new_tokens" not in cfg:
        cfg["max_length"] = DEFAULT_SEARCH["max_length"]
    cfg.setdefault("do_sample", DEFAULT_SEARCH["do_sample"])
    return cfg


def log_phi3_model(
    model_dir: str,
    *,
    chat: bool = False,
    name: str | None = None,
    artifact_path: str | None = None,
    registered_model_name: str | None = None,
    alias: str | None = None,
    model_config: dict | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    run_name: str | None = None,
    input_example: Any = None,
    with_input_example: bool = True,
) -> dict:
    """Logs model_dir as a pyfunc model in a new MLflow run (or the active one); optionally
    registers it and sets an alias on the new version. Returns (and does not print) the summary
    dict: run_id, model_id, model_uri (models:/m-...), runs_uri, registered_model, version,
    alias, registered_uri, artifact_path (the logged model's name), artifact_uri (the logged
    model's artifact root), onnx_artifact (the ONNX folder under that root), experiment_id,
    shape ("prompt" | "chat") and model_config.

    with_input_example=False logs no input example, and so skips MLflow's check that loads the
    logged model in Python and predicts on the example before the run ends: for a full-size
    model that is a whole native load of the weights plus a generation (docs/benchmarks.md)."""
    model_dir = os.path.abspath(model_dir)
    if not os.path.isfile(os.path.join(model_dir, "genai_config.json")):
        raise FileNotFoundError(
            f"{model_dir} has no genai_config.json: pass the onnxruntime-genai model folder "
            "(for Phi-3, e.g. cpu_and_mobile/cpu-int4-rtn-block-32-acc-level-4)"
        )
    if alias and not registered_model_name:
        raise ValueError("An alias needs a registered model name (registered_model_name / --register)")
    name = name or artifact_path or "model"
    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    if experiment:
        mlflow.set_experiment(experiment)
    config = search_config(model_config)
    if chat:
        config.setdefault("model_name", os.path.basename(model_dir))
        python_model = Phi3ChatModel()
        signature = chat_signature()
        if input_example is None and with_input_example:
            input_example = {"messages": CHAT_EXAMPLE_MESSAGES, "max_tokens": 16}
        meta = {"task": "llm/v1/chat", "genai_batch_shape": "chat"}
    else:
        python_model = Phi3Model()
        signature = prompt_signature()
        if input_example is None and with_input_example:
            input_example = pd.DataFrame({"prompt": [PROMPT_EXAMPLE]})
        meta = {"genai_batch_shape": "prompt"}

    active = mlflow.active_run()
    # Inside a caller's run, log there; otherwise in a new run of its own.
    run_context = contextlib.nullcontext(active) if active else mlflow.start_run(run_name=run_name)
    with tempfile.TemporaryDirectory() as tmp, run_context as run:
        params = {
            "genai_batch.shape": "chat" if chat else "prompt",
            "genai_batch.model_folder": os.path.basename(model_dir),
        }
        mlflow.log_params(params)
        run_id = run.info.run_id
        # The same steps as mlflow.pyfunc.log_model (Model.log), but the folder is copied once: that
        # function saves the model into a temporary folder (a first copy of the weights) and then
        # uploads that folder (a second). Here the saved model refers to the weights by symlinks and
        # the upload, MLflow's own for the store (copy, multipart S3 upload, ...), reads through them.
        logged = mlflow.initialize_logged_model(
            name=name,
            source_run_id=run_id,
            # As Model.log does: the run's parameters, here with the model_config beside them.
            params={**params, **{k: str(v) for k, v in config.items()}},
        )
        mlflow_model = mlflow.models.Model(
            artifact_path=logged.artifact_location,
            model_uuid=logged.model_id,
            run_id=run_id,
            model_id=logged.model_id,
            metadata=meta,
        )
        try:
            local = save_with_weights_linked(
                os.path.join(tmp, "model"),
                model_dir,
                mlflow_model,
                python_model=python_model,
                code_paths=[stage_code_paths(tmp)],
                signature=signature,
                input_example=input_example,
                model_config=config,
                pip_requirements=pinned_requirements(),
            )
            client = mlflow.MlflowClient()
            client.log_outputs(run_id=run_id, models=[LoggedModelOutput(logged.model_id, step=0)])
            client.log_model_artifacts(logged.model_id, local)
            serving_input = mlflow_model.get_serving_input(local)
            if serving_input is not None:
                # On the stored copy (read in place from a local root; a bucket's is downloaded):
                # onnxruntime refuses weights that a symlink puts outside the model's folder.
                check_serving_input(logged.artifact_location, serving_input)
            # Model.log logs the model_config as run parameters too, and only warns when it cannot
            # (a caller's run that holds other values under these keys).
            try:
                mlflow.log_params(config)
            except mlflow.exceptions.MlflowException as e:
                LOG.warning("model_config not logged as run parameters: %s", e)
        except BaseException:
            # Marked FAILED so no one takes it for a whole model; the first error is the one raised.
            with contextlib.suppress(Exception):
                mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.FAILED)
            raise
        mlflow.finalize_logged_model(logged.model_id, LoggedModelStatus.READY)
        experiment_id = run.info.experiment_id

    version = None
    if registered_model_name:
        version = mlflow.register_model(f"models:/{logged.model_id}", registered_model_name).version
        if alias:
            mlflow.MlflowClient().set_registered_model_alias(registered_model_name, alias, str(version))
    return {
        "run_id": run_id,
        "model_id": logged.model_id,
        "model_uri": f"models:/{logged.model_id}",
        "runs_uri": f"runs:/{run_id}/{name}",
        "registered_model": registered_model_name,
        "version": None if version is None else str(version),
        "alias": alias if registered_model_name else None,
        "registered_uri": (
            f"models:/{registered_model_name}@{alias}"
            if registered_model_name and alias
            else f"models:/{registered_model_name}/{version}"
            if registered_model_name
            else None
        ),
        "artifact_path": name,
        "artifact_uri": logged.artifact_location,
        "onnx_artifact": f"artifacts/{os.path.basename(model_dir)}",
        "experiment_id": experiment_id,
        "shape": "chat" if chat else "prompt",
        "model_config": config,
    }


# Files of the model folder at least this large (the weights) are symlinked into the saved model
# instead of copied by MLflow; smaller ones (config, tokenizer, chat template) go through its copy.
LINK_MIN_BYTES = 1 << 20


def save_with_weights_linked(path: str, model_dir: str, mlflow_model: Any, **save_args: Any) -> str:
    """Saves the pyfunc model to ``path`` as mlflow.pyfunc.save_model does, with the folder as the
    artifact ``ARTIFACT_KEY`` (``artifacts/<folder name>/``), but copies only the folder's small
    files: each file of LINK_MIN_BYTES or more is a symlink to the original. The MLmodel's
    model_size_bytes counts the linked files. Returns ``path``."""
    staged = os.path.join(os.path.dirname(path), "folder", os.path.basename(model_dir))
    linked = []
    for parent, _, files in os.walk(model_dir):
        for f in files:
            src = os.path.join(parent, f)
            rel = os.path.relpath(src, model_dir)
            if os.path.getsize(src) >= LINK_MIN_BYTES:
                linked.append(rel)
            else:
                os.makedirs(os.path.join(staged, os.path.dirname(rel)), exist_ok=True)
                shutil.copy2(src, os.path.join(staged, rel))
    mlflow.pyfunc.save_model(path, mlflow_model=mlflow_model, artifacts={ARTIFACT_KEY: staged}, **save_args)
    saved_folder = os.path.join(path, "artifacts", os.path.basename(model_dir))
    for rel in linked:
        target = os.path.join(saved_folder, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.symlink(os.path.join(model_dir, rel), target)
    # The artifact's source is the user's folder, as log_model records it, not the staging folder.
    mlflow_model.flavors[mlflow.pyfunc.FLAVOR_NAME]["artifacts"][ARTIFACT_KEY]["uri"] = model_dir
    mlflow_model.model_size_bytes = sum(
        os.path.getsize(os.path.join(parent, f)) for parent, _, files in os.walk(path) for f in files
    )
    mlflow_model.save(os.path.join(path, "MLmodel"))
    return path


def check_serving_input(model_uri: str, serving_input: str) -> None:
    """What Model.log does with an input example: loads the model in Python and predicts on it.
    Unlike Model.log, which only warns, a model that cannot answer its example is marked FAILED
    and not registered."""
    try:
        mlflow.models.validate_serving_input(model_uri=model_uri, serving_input=serving_input)
    except Exception as e:  # any failure of the user's model load or predict
        raise ValueError(
            f"the logged model cannot answer its input example ({type(e).__name__}: {e}); "
            "check the model folder, or log with --no-input-example to skip this check"
        ) from e


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m genai_batch.log_model",
        description="Log an onnxruntime-genai model folder to MLflow as a pyfunc model.",
    )
    p.add_argument("--model-dir", required=True, help="folder that holds genai_config.json")
    p.add_argument("--chat", action="store_true", help="log the llm/v1/chat shape (default: prompt -> string)")
    p.add_argument("--name", default="model", help="the logged model's name (MLflow 3; was artifact_path)")
    p.add_argument("--register", metavar="NAME", help="register a version under this model name")
    p.add_argument("--alias", help="set this alias on the new version (needs --register)")
    p.add_argument("--tracking-uri", help="default: MLFLOW_TRACKING_URI or MLflow's default")
    p.add_argument("--experiment", help="experiment name (created when missing)")
    p.add_argument("--run-name")
    p.add_argument("--max-new-tokens", type=int)
    p.add_argument("--max-length", type=int)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-p", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--do-sample", action="store_true", default=None)
    p.add_argument("--model-config", help="JSON object of extra model_config keys")
    p.add_argument("--no-input-example", action="store_true",
                   help="log no input example: MLflow then skips loading the model and predicting on the example"
                        " at log time (a full load of the weights for a real-size model)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    cfg = json.loads(args.model_config) if args.model_config else {}
    config = search_config(
        cfg,
        max_new_tokens=args.max_new_tokens,
        max_length=args.max_length,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        do_sample=args.do_sample,
    )
    try:
        result = _log_from_args(args, config)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sys.stdout.flush()
    print(json.dumps(result))
    return 0


def _log_from_args(args: argparse.Namespace, config: dict) -> dict:
    return log_phi3_model(
        args.model_dir,
        chat=args.chat,
        name=args.name,
        registered_model_name=args.register,
        alias=args.alias,
        model_config=config,
        tracking_uri=args.tracking_uri,
        experiment=args.experiment,
        run_name=args.run_name,
        with_input_example=not args.no_input_example,
    )


if __name__ == "__main__":
    sys.exit(main())

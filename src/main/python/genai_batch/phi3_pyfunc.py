"""MLflow pyfunc wrappers around an onnxruntime-genai model folder (Phi-3 and alike).

Two shapes, both loaded from the artifact ``phi3-mini-onnx`` (the folder that holds
``genai_config.json``, the ONNX decoder and the tokenizer files):

* :class:`Phi3Model` -- the tutorial's wrapper: input column ``prompt`` (string), output one
  string per row, the generated answer without its stop token. Unlike the tutorial, every row
  of the input is answered, not just row 0.
* :class:`Phi3ChatModel` -- OpenAI-style ``llm/v1/chat``: input column ``messages`` (a list of
  ``{"role", "content", "name"?}``) and optional ``temperature``, ``max_tokens``, ``stop``,
  ``n``, ``stream`` columns; output one ``chat.completion`` dict per row.

Search options come from the logged model's ``model_config`` (``context.model_config``):
``max_new_tokens``, ``max_length``, ``min_length``, ``temperature``, ``top_p``, ``top_k``,
``do_sample``, ``repetition_penalty``, ``random_seed``. With none of them set, the tutorial's
``max_length`` of 300 applies, with greedy search (``do_sample`` false). ``max_length`` counts
prompt and answer together; ``max_new_tokens`` counts the generated tokens, the stop token
included; with both, the tighter one wins. Both are capped at the model's context length.

Generation runs one prompt at a time (batch size 1), the same way the Java engine's reference
(src/test/python/reference_generate.py) does, so greedy answers match token for token.

This module must import without MLflow-specific side effects: it is shipped with the model via
``code_paths`` and imported again when the model is loaded in a fresh Python.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from typing import Any, Iterable

import mlflow.pyfunc
import pandas as pd

ARTIFACT_KEY = "phi3-mini-onnx"
DEFAULT_MAX_LENGTH = 300

# model_config keys passed to og.GeneratorParams.set_search_options as they are.
_PASSTHROUGH_OPTIONS = (
    "min_length",
    "temperature",
    "top_p",
    "top_k",
    "do_sample",
    "repetition_penalty",
    "random_seed",
)
_INT_OPTIONS = {"max_length", "max_new_tokens", "min_length", "top_k", "random_seed"}
_FLOAT_OPTIONS = {"temperature", "top_p", "repetition_penalty"}


def _missing(v: Any) -> bool:
    """None, NaN, pandas NA: a cell a row left empty."""
    if v is None:
        return True
    if isinstance(v, (list, tuple, dict, str, bytes)):
        return False
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):  # arrays and the like
        return False


def _plain(v: Any) -> Any:
    """numpy scalars/arrays and pandas containers to plain Python values."""
    if hasattr(v, "tolist") and not isinstance(v, (str, bytes)):
        return v.tolist()
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        return v.item()
    return v


def normalize_search_config(config: dict | None) -> dict:
    """The search keys of a model_config, typed; other keys are left out."""
    out: dict[str, Any] = {}
    for key, value in (config or {}).items():
        if key not in _PASSTHROUGH_OPTIONS and key not in ("max_length", "max_new_tokens"):
            continue
        value = _plain(value)
        if _missing(value):
            continue
        if key == "do_sample":
            if isinstance(value, str):
                value = value.strip().lower() in ("1", "true", "yes")
            out[key] = bool(value)
        elif key in _INT_OPTIONS:
            out[key] = int(value)
        elif key in _FLOAT_OPTIONS:
            out[key] = float(value)
    return out


class _GenAiRunner:
    """One loaded onnxruntime-genai model and tokenizer, generating one prompt at a time."""

    def __init__(self, model_dir: str, model_config: dict | None):
        import onnxruntime_genai as og

        self.og = og
        self.model_dir = model_dir
        with open(os.path.join(model_dir, "genai_config.json"), encoding="utf-8") as f:
            genai_config = json.load(f)
        model_section = genai_config.get("model", {})
        self.context_length = int(model_section.get("context_length") or 0) or None
        eos = model_section.get("eos_token_id", [])
        self.eos_ids = {int(e) for e in (eos if isinstance(eos, list) else [eos])}
        self.model = og.Model(model_dir)
        self.tokenizer = og.Tokenizer(self.model)
        try:  # the tokenizer's own EOS ids, as the Java engine also counts them
            self.eos_ids.update(int(e) for e in self.tokenizer.eos_token_ids)
        except Exception:  # noqa: BLE001 - genai_config.json's list is enough
            pass
        self.search = normalize_search_config(model_config)
        if "max_length" not in self.search and "max_new_tokens" not in self.search:
            self.search["max_length"] = DEFAULT_MAX_LENGTH

    def budget(self, prompt_len: int, overrides: dict | None = None) -> tuple[int, int]:
        """(max_length for the generator, most new tokens) for a prompt of prompt_len tokens."""
        opts = dict(self.search)
        opts.update(overrides or {})
        limit = self.context_length or 1 << 30
        if opts.get("max_length") is not None:
            limit = min(limit, int(opts["max_length"]))
        new = limit - prompt_len
        if opts.get("max_new_tokens") is not None:
            new = min(new, int(opts["max_new_tokens"]))
        if new < 1:
            raise ValueError(
                f"The prompt has {prompt_len} tokens, which leaves no room to generate: the limit is "
                f"{limit - 1} prompt tokens (max_length {limit}"
                + (f", context length {self.context_length}" if self.context_length else "")
                + ")"
            )
        return prompt_len + new, new

    def generate(
        self,
        prompt: str,
        overrides: dict | None = None,
        stop: Iterable[str] | None = None,
    ) -> dict:
        """Generates for one prompt.

        Returns {"text", "tokens" (generated ids, the stop token included), "prompt_tokens",
        "finish_reason": "stop"|"length"}.
        """
        og = self.og
        if prompt is None or not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"Every prompt must be a non-empty string, got {prompt!r}")
        ids = self.tokenizer.encode(prompt)
        prompt_len = len(ids)
        max_length, max_new = self.budget(prompt_len, overrides)
        opts = dict(self.search)
        opts.update(overrides or {})
        search = {k: opts[k] for k in _PASSTHROUGH_OPTIONS if opts.get(k) is not None}
        if search.get("temperature") == 0.0:  # OpenAI's "temperature 0" means greedy
            search.pop("temperature")
            search["do_sample"] = False
        search.setdefault("do_sample", False)
        params = og.GeneratorParams(self.model)
        params.set_search_options(max_length=max_length, batch_size=1, **search)
        generator = og.Generator(self.model, params)
        generator.append_tokens(ids)
        stops = [s for s in (stop or []) if s]
        stream = self.tokenizer.create_stream() if stops else None
        streamed = ""
        # Tokens are collected from get_next_tokens() step by step: onnxruntime-genai 0.12 does
        # not append the EOS token that ends a batch-size-1 search to get_sequence(0), so the
        # sequence alone cannot tell "stopped" from "ran out of length".
        new: list[int] = []
        finish = "length"
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            new.append(token)
            if token in self.eos_ids:
                finish = "stop"
                break
            if stream is not None:
                streamed += stream.decode(token)
                if any(s in streamed for s in stops):
                    break
            if len(new) >= max_new:
                break
        answer = new[:-1] if finish == "stop" else new
        # decode([]) kills the process with SIGFPE in onnxruntime-genai 0.12.
        text = self.tokenizer.decode(answer) if answer else ""
        if stops:
            cut = min((text.find(s) for s in stops if s in text), default=-1)
            if cut >= 0:
                text = text[:cut]
                finish = "stop"
        return {
            "text": text,
            "tokens": new,
            "prompt_tokens": prompt_len,
            "finish_reason": finish,
        }


def _prompts(model_input: Any) -> list[str]:
    """The prompts of a pyfunc input: a DataFrame's ``prompt`` column (or its only column), a
    dict with ``prompt``, a list of strings, or one string."""
    if isinstance(model_input, pd.DataFrame):
        if "prompt" in model_input.columns:
            col = model_input["prompt"]
        elif len(model_input.columns) == 1:
            col = model_input.iloc[:, 0]
        else:
            raise ValueError(
                f"Expected a 'prompt' column, got columns {list(model_input.columns)}"
            )
        return [_plain(v) for v in col.tolist()]
    if isinstance(model_input, pd.Series):
        return [_plain(v) for v in model_input.tolist()]
    if isinstance(model_input, dict):
        v = model_input.get("prompt", model_input.get("prompts"))
        return [v] if isinstance(v, str) else list(v)
    if isinstance(model_input, str):
        return [model_input]
    if hasattr(model_input, "tolist"):
        model_input = model_input.tolist()
    return [p if isinstance(p, str) else (p.get("prompt") if isinstance(p, dict) else p) for p in model_input]


class Phi3Model(mlflow.pyfunc.PythonModel):
    """prompt (string) -> generated answer (string), one per input row."""

    def load_context(self, context):
        model_path = context.artifacts[ARTIFACT_KEY]
        self.runner = _GenAiRunner(model_path, getattr(context, "model_config", None))

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        overrides = normalize_search_config(params) if params else None
        return [self.runner.generate(p, overrides)["text"] for p in _prompts(model_input)]


def _records(model_input: Any) -> list[dict]:
    """The chat requests of a pyfunc input, one dict per row."""
    if isinstance(model_input, pd.DataFrame):
        rows = model_input.to_dict(orient="records")
    elif isinstance(model_input, dict):
        msgs = model_input.get("messages")
        # {"messages": [..]} is one request; {"messages": [[..], [..]]} is one per row.
        if msgs and isinstance(_plain(msgs)[0], (list, tuple)):
            rows = [{**model_input, "messages": m} for m in _plain(msgs)]
        else:
            rows = [model_input]
    elif isinstance(model_input, list):
        rows = [r if isinstance(r, dict) else {"messages": r} for r in model_input]
    else:
        raise ValueError(f"Unsupported input for llm/v1/chat: {type(model_input).__name__}")
    out = []
    for row in rows:
        clean = {}
        for k, v in row.items():
            v = _plain(v)
            if not isinstance(v, (list, dict, str)) and _missing(v):
                continue
            clean[k] = v
        out.append(clean)
    return out


def _messages(raw: Any) -> list[dict]:
    if isinstance(raw, str):
        raw = json.loads(raw)
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"'messages' must be a non-empty list of {{role, content}}, got {raw!r}")
    out = []
    for m in raw:
        m = _plain(m)
        if not isinstance(m, dict) or "role" not in m:
            raise ValueError(f"Every message needs a 'role' and a 'content', got {m!r}")
        msg = {"role": str(m["role"]), "content": "" if _missing(m.get("content")) else str(m.get("content"))}
        if not _missing(m.get("name")) and m.get("name") is not None:
            msg["name"] = str(m["name"])
        out.append(msg)
    return out


class Phi3ChatModel(mlflow.pyfunc.PythonModel):
    """llm/v1/chat: messages (+ optional temperature, max_tokens, stop, n, stream) ->
    chat.completion dict, one per input row. ``stream`` is accepted and ignored."""

    def load_context(self, context):
        model_path = context.artifacts[ARTIFACT_KEY]
        config = dict(getattr(context, "model_config", None) or {})
        self.runner = _GenAiRunner(model_path, config)
        self.model_name = str(config.get("model_name") or os.path.basename(os.path.normpath(model_path)))

    def chat_prompt(self, messages: list[dict]) -> str:
        return self.runner.tokenizer.apply_chat_template(
            json.dumps(messages), add_generation_prompt=True
        )

    def complete(self, request: dict, params: dict | None = None) -> dict:
        messages = _messages(request.get("messages"))
        prompt = self.chat_prompt(messages)
        overrides = normalize_search_config(params) if params else {}
        if request.get("max_tokens") is not None:
            overrides["max_new_tokens"] = int(request["max_tokens"])
        if request.get("temperature") is not None:
            overrides["temperature"] = float(request["temperature"])
        stop = request.get("stop")
        if isinstance(stop, str):
            stop = [stop]
        n = int(request.get("n") or 1)
        if n < 1:
            raise ValueError(f"n must be >= 1, got {n}")
        choices = []
        prompt_tokens = 0
        completion_tokens = 0
        for index in range(n):
            g = self.runner.generate(prompt, overrides, stop=stop)
            prompt_tokens = g["prompt_tokens"]
            completion_tokens += len(g["tokens"])
            choices.append(
                {
                    "index": index,
                    "message": {"role": "assistant", "content": g["text"]},
                    "finish_reason": g["finish_reason"],
                }
            )
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.model_name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        return [self.complete(r, params) for r in _records(model_input)]

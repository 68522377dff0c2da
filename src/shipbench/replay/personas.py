"""What the replay answers when it impersonates a self-hosted server: the JSON shapes of llama.cpp, llama-cpp-python,
Ollama and vLLM metadata endpoints, their context-overflow errors and their 404s.

Invariants: pure functions of their arguments (the server holds the state); a tokenize count is the replay's own
(frames.output_tokens: ceil(UTF-8 bytes / 4)), so counting a request body's text gives the prompt tokens its
usage reports, and counting an answer's text its output tokens.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from shipbench.replay.frames import output_tokens

Persona = Literal["llama.cpp", "llama-cpp-python", "ollama", "vllm"]
PERSONAS: tuple[Persona, ...] = ("llama.cpp", "llama-cpp-python", "ollama", "vllm")
LLAMA_CPP_BUILD = "b6500-replay"
OLLAMA_VERSION = "0.12.6"
VLLM_VERSION = "0.10.1"
CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' }}"
    "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
OLLAMA_TEMPLATE = "{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}{{ .Prompt }}"


def token_ids(text: str) -> list[int]:
    """A deterministic token list as long as the replay's count for `text`."""
    data = text.encode("utf-8")
    return [int.from_bytes(data[i : i + 4].ljust(4, b"\0"), "little") % 151_936 for i in range(0, len(data), 4)]


def gguf_path(model: str) -> str:
    return f"/models/{model.replace('/', '_').replace(':', '-')}-Q4_K_M.gguf"


def llama_cpp_models(models: list[str], native_ctx: int) -> dict[str, Any]:
    data = [
        {
            "id": m,
            "object": "model",
            "created": 0,
            "owned_by": "llamacpp",
            "meta": {
                "vocab_type": 2,
                "n_vocab": 151_936,
                "n_ctx_train": native_ctx,
                "n_embd": 3584,
                "n_params": 7_615_616_512,
                "size": 4_683_073_536,
            },
        }
        for m in models
    ]
    return {"object": "list", "data": data}


def llama_cpp_props(model: str, n_ctx: int) -> dict[str, Any]:
    return {
        "default_generation_settings": {
            "id": 0,
            "id_task": -1,
            "n_ctx": n_ctx,
            "speculative": False,
            "is_processing": False,
            "params": {"n_predict": -1, "temperature": 0.8, "top_k": 40, "top_p": 0.95, "seed": 4294967295},
        },
        "total_slots": 1,
        "model_path": gguf_path(model),
        "chat_template": CHAT_TEMPLATE,
        "chat_template_caps": {"supports_tools": True, "supports_tool_calls": True, "supports_system_role": True},
        "modalities": {"vision": False, "audio": False},
        "build_info": LLAMA_CPP_BUILD,
    }


def openai_models(models: list[str], owner: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": m, "object": "model", "created": 0, "owned_by": owner, "permissions": []} for m in models],
    }


def vllm_models(models: list[str], n_ctx: int) -> dict[str, Any]:
    data: list[dict[str, Any]] = [
        {
            "id": m,
            "object": "model",
            "created": 0,
            "owned_by": "vllm",
            "root": f"/models/{m}",
            "parent": None,
            "max_model_len": n_ctx,
            "permission": [],
        }
        for m in models
    ]
    return {"object": "list", "data": data}


def _details() -> dict[str, Any]:
    return {
        "parent_model": "",
        "format": "gguf",
        "family": "qwen2",
        "families": ["qwen2"],
        "parameter_size": "7.6B",
        "quantization_level": "Q4_K_M",
    }


def _digest(model: str) -> str:
    return hashlib.sha256(model.encode()).hexdigest()


def ollama_name(model: str) -> str:
    return model if ":" in model.rsplit("/", 1)[-1] else model + ":latest"


def ollama_tags(models: list[str]) -> dict[str, Any]:
    entries = [
        {
            "name": ollama_name(m),
            "model": ollama_name(m),
            "modified_at": "2026-01-01T00:00:00Z",
            "size": 4_683_087_332,
            "digest": _digest(m),
            "details": _details(),
        }
        for m in models
    ]
    return {"models": entries}


def ollama_show(model: str, native_ctx: int, num_ctx: int | None) -> dict[str, Any]:
    parameters = 'stop "<|im_start|>"\nstop "<|im_end|>"'
    if num_ctx:
        parameters += f"\nnum_ctx {num_ctx}"
    return {
        "modelfile": f"FROM {gguf_path(model)}\nTEMPLATE {OLLAMA_TEMPLATE!r}\n",
        "parameters": parameters,
        "template": OLLAMA_TEMPLATE,
        "details": _details(),
        "model_info": {
            "general.architecture": "qwen2",
            "general.parameter_count": 7_615_616_512,
            "qwen2.context_length": native_ctx,
            "qwen2.embedding_length": 3584,
        },
        "capabilities": ["completion", "tools"],
        "modified_at": "2026-01-01T00:00:00Z",
    }


def ollama_ps(loaded: dict[str, int]) -> dict[str, Any]:
    entries = [
        {
            "name": ollama_name(m),
            "model": ollama_name(m),
            "size": 5_000_000_000,
            "digest": _digest(m),
            "details": _details(),
            "expires_at": "2318-01-01T00:00:00Z",
            "size_vram": 5_000_000_000,
            "context_length": ctx,
        }
        for m, ctx in loaded.items()
    ]
    return {"models": entries}


def ollama_chat(model: str, text: str, prompt_tokens: int) -> dict[str, Any]:
    return {
        "model": ollama_name(model),
        "created_at": "2026-01-01T00:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": True,
        "done_reason": "stop",
        "total_duration": 1_000_000,
        "load_duration": 500_000,
        "prompt_eval_count": prompt_tokens,
        "eval_count": output_tokens(text),
    }


def context_error(persona: Persona | None, prompt: int, n_ctx: int) -> dict[str, Any]:
    """The 400 body a server sends for a prompt longer than its context."""
    if persona == "llama-cpp-python":
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {prompt} tokens "
            f"({prompt} in the messages, 0 in the completion). Please reduce the length of the messages or completion."
        )
        return {
            "error": {
                "message": message,
                "type": "invalid_request_error",
                "param": "messages",
                "code": "context_length_exceeded",
            }
        }
    if persona == "vllm":
        message = (
            f"This model's maximum context length is {n_ctx} tokens. However, you requested {prompt + 1} tokens "
            f"({prompt} in the messages, 1 in the completion). Please reduce the length of the messages or completion."
        )
        return {"object": "error", "message": message, "type": "BadRequestError", "param": None, "code": 400}
    return {
        "error": {
            "code": 400,
            "message": "the request exceeds the available context size, try increasing it",
            "type": "exceed_context_size_error",
            "n_prompt_tokens": prompt,
            "n_ctx": n_ctx,
        }
    }


def not_found(persona: Persona | None, path: str) -> tuple[int, dict[str, Any] | str]:
    """What the server answers on a route it does not have (a JSON body, or plain text)."""
    if persona == "llama.cpp":
        return 404, {"error": {"code": 404, "message": "File Not Found", "type": "not_found_error"}}
    if persona == "ollama":
        return 404, "404 page not found"
    if persona in ("llama-cpp-python", "vllm"):
        return 404, {"detail": "Not Found"}
    return 404, {"error": {"message": f"replay: no route for {path}"}}

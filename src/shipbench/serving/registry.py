"""Serving kind -> backend (the `serving.kind` of a suite's model)."""

from __future__ import annotations

from shipbench.config import ServingKind
from shipbench.serving.base import ServingBackend
from shipbench.serving.llamacpp import LlamaCppBackend
from shipbench.serving.llamacpp_python import LlamaCppPythonBackend
from shipbench.serving.llamaswap import LlamaSwapBackend
from shipbench.serving.lmstudio import LmStudioBackend
from shipbench.serving.ollama import OllamaBackend
from shipbench.serving.vllm import VllmBackend

BACKENDS: dict[ServingKind, ServingBackend] = {
    "llama.cpp": LlamaCppBackend(),
    "llama-cpp-python": LlamaCppPythonBackend(),
    "llama-swap": LlamaSwapBackend(),
    "ollama": OllamaBackend(),
    "vllm": VllmBackend(),
    "lmstudio": LmStudioBackend(),
}


def get_backend(kind: ServingKind) -> ServingBackend:
    return BACKENDS[kind]

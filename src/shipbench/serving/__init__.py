"""Self-hosted model servers as typed data: health, served models and context, metadata, warmup, tokenizer."""

from shipbench.serving.base import (
    ServedContext,
    ServingBackend,
    ServingCapabilities,
    ServingInfo,
    WarmupResult,
    server_root,
)
from shipbench.serving.registry import BACKENDS, get_backend

__all__ = [
    "BACKENDS",
    "ServedContext",
    "ServingBackend",
    "ServingCapabilities",
    "ServingInfo",
    "WarmupResult",
    "get_backend",
    "server_root",
]

"""Canonical JSON for persisted results: sorted keys, fixed indentation, trailing newline.

Invariant: equal models serialise to byte-identical text.
"""

from __future__ import annotations

import json

from pydantic import BaseModel


def to_json(model: BaseModel) -> str:
    return json.dumps(model.model_dump(mode="json"), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

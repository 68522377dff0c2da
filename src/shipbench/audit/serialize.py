"""Canonical JSON for persisted results: sorted keys, fixed indentation, trailing newline.

Invariants: equal models serialise to byte-identical text; the text is always valid UTF-8 (a lone
surrogate, e.g. from an undecodable file name that escaped `display_path`, is written as a JSON
\\u escape instead of crashing the writer).
"""

from __future__ import annotations

import json

from pydantic import BaseModel


def to_json(model: BaseModel) -> str:
    data = model.model_dump(mode="json")
    text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
    return text

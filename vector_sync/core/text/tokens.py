"""Counting tokens exactly as the model will see them, for chunk budgets."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

from tokenizers import Tokenizer

TokenCounter = Callable[[str], int]


@lru_cache(maxsize=8)
def _tokenizer(folder: str) -> Tokenizer:
    tokenizer = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    # the shipped tokenizer.json truncates and pads to 128: with either on, every text
    # would look short and the model would silently drop the rest of a chunk
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


def token_counter(model_folder: Path) -> TokenCounter:
    """Tokens of a text including the special tokens ([CLS], [SEP]) the model adds."""
    tokenizer = _tokenizer(str(model_folder))

    def count(text: str) -> int:
        return len(tokenizer.encode(text).ids)

    return count


def model_max_tokens(model_folder: Path, default: int = 512) -> int:
    config = Path(model_folder) / "tokenizer_config.json"
    if config.is_file():
        value = json.loads(config.read_text()).get("model_max_length", default)
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return default

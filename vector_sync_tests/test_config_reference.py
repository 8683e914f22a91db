"""docs/configuration.md is generated from the config models; it must say what they say."""

from __future__ import annotations

from vector_sync import config_reference
from vector_sync.sources import REGISTRY


def test_the_configuration_page_is_up_to_date_with_the_models():
    page = config_reference.PAGE.read_text(encoding="utf-8")
    assert page == config_reference.render(), (
        "docs/configuration.md is out of date: run `python -m vector_sync.config_reference`")


def test_the_page_documents_every_key_of_every_source_kind():
    page = config_reference.render()
    for kind in REGISTRY.names():
        model = REGISTRY.config_model(kind)
        assert f"with `kind: {kind}`" in page
        for name, field in model.model_fields.items():
            key = field.alias or name  # the key a config file uses
            assert f"| `{key}` |" in page, f"{kind}.{key} is missing from the reference"

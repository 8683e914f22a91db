"""The text a search hit shows (and the model embeds) is the text a reader of the note sees:
a note whose first heading is its title does not show the title twice. Through the CLI with
the example vault's own note, the real model and embedded Qdrant."""

from __future__ import annotations

import shutil

from vector_sync_tests.support import Project
from vector_sync_tests.support.doc_site import VAULT


def test_search_hits_of_a_note_headed_by_its_title_show_the_title_once(project: Project,
                                                                        capsys):
    shutil.copy(VAULT / "cooking" / "Knife Skills.md", project.vault / "Knife Skills.md")
    code, _ = project.cli("sync", capsys=capsys)
    assert code == 0
    code, hits = project.cli("search", "notes", "knife grip", "--limit", "10", capsys=capsys)
    assert code == 0 and len(hits) > 2
    for hit in hits:
        assert hit["text"].count("Knife Skills") == 1, hit["text"]
        assert hit["text"].startswith("title: Knife Skills\n")
    texts = {hit["chunk_index"]: hit["text"] for hit in hits}
    assert texts[0].startswith("title: Knife Skills\n\nA sharp knife")  # the intro
    assert any(text.startswith("title: Knife Skills\nThe grip\n\nHold the knife")
               for text in texts.values())

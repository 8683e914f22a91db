"""The sync's stages, in order: snapshot, diff (the change set), embed, apply; the dry run
(plan); and the files and rows they hand each other."""

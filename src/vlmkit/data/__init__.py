"""Datasets as plain files: samples.jsonl + media/ (the record is described in docs/architecture.md, the verbs
in docs/data.md). `schema` reads and writes them, `importers/` makes them from public sources, `media/` loads
images and videos, `collate` turns samples into model inputs; stats, split, merge, leakage and export work on
whole folders."""

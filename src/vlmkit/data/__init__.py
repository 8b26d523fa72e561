"""Datasets as plain files: samples.jsonl + media/ (see shared/ARCHITECTURE.md)."""

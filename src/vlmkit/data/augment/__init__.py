"""Text augmentation of a dataset's questions through an OpenAI-compatible endpoint (`vlmkit data augment`).

language: the script-based language check; prompts: the default and user prompt templates; filters: what makes
a generated question unusable; log: the resumable request log; runner: the jobs, requests and output dataset;
report: augment_report.json and the terminal summary.
"""

from .runner import METHODS, AugmentSettings, augment_dataset

__all__ = ["METHODS", "AugmentSettings", "augment_dataset"]

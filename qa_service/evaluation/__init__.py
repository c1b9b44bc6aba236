"""Evaluation: per-rule precision/recall on labelled corpora and on labelled text lines."""

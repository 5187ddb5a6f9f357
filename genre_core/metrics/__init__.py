"""Evaluation, pure numpy/scipy: track-level reports with bootstrap CIs, McNemar, k-fold
summaries (`evaluation`), and multi-label metrics (`multilabel`). No torch, no store."""

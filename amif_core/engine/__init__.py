"""Engines of AMIF: inference (protect / unlock) and training."""

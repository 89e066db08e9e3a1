"""Datasets of AMIF: the Harvard training pairs and the bundled demo volumes."""

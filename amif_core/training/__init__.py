"""Training AMIF: the two-stage trainer, its losses and crop sampling, and the release of a weights file."""

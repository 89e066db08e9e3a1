"""Measuring AMIF: fusion metrics (:mod:`~amif_core.evaluation.metrics`), the fusion and protection
evaluation (:mod:`~amif_core.evaluation.fusion`), the one wrong-key generator
(:mod:`~amif_core.evaluation.wrong_keys`), speed (:mod:`~amif_core.evaluation.benchmark`) and the attacks."""

"""Measuring AMIF: fusion metrics (:mod:`~amif_core.evaluation.metrics`), the fusion and protection
evaluation (:mod:`~amif_core.evaluation.fusion`), the one wrong-key generator
(:func:`~amif_core.evaluation.attacks.wrong_keys.wrong_key`), speed (:mod:`~amif_core.evaluation.benchmark`) and the attacks."""

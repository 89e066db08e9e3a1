"""Tracing models trained on AMIF's outputs: the owner secret, the trace mark and the trace statistic.

:mod:`~amif_core.tracing.secret` holds the owner's 256-bit secret, :mod:`~amif_core.tracing.mark`
the invisible mark it chooses, which the released fusion carries, and :mod:`~amif_core.tracing.detect`
the statistic with its exact p-value. Tracing a suspect from probe folders with the owner's model is
:mod:`amif_core.inference.trace`. Torch-free. See ``docs/tracing.md``.
"""

"""The AMIF key, torch-free: the :class:`~amif_core.key.core.Key` and its checks (:mod:`~amif_core.key.core`),
its codec (:mod:`~amif_core.key.codec`) and the ``.amifkey`` file (:mod:`~amif_core.key.file`)."""

"""Files and geometry: atomic writes (:mod:`~amif_core.io.atomic`), volumes on disk
(:mod:`~amif_core.io.volumes`) and their grids (:mod:`~amif_core.io.geometry`). Torch-free."""

"""Volumes on disk (:mod:`~amif_core.io.volumes`, :mod:`~amif_core.io.dicom`) and their grids
(:mod:`~amif_core.io.geometry`). Torch-free. Atomic writes are :mod:`amif_core.atomic`."""

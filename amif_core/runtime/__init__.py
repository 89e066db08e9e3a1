"""Where and how a run executes, apart from what it computes: the device (:mod:`~amif_core.runtime.devices`), the
memory plan, batch size and out-of-memory fallback (:mod:`~amif_core.runtime.runner`) and giving freed memory back
to the system (:mod:`~amif_core.runtime.heap`). Torch is imported only by the functions that need it."""

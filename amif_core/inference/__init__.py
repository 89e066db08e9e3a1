"""Running the model: :mod:`~amif_core.inference.model` (AMIFModel on arrays), the input pair
(:mod:`~amif_core.inference.pair`), the volume pipeline (:mod:`~amif_core.inference.pipeline`) and the weights file
(:mod:`~amif_core.inference.weights`). The device, memory and batch policy they run under is
:mod:`amif_core.runtime`."""

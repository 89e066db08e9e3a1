"""Running the model: :mod:`~amif_core.inference.model` (AMIFModel on arrays), the runner's device,
memory and batch policy (:mod:`~amif_core.inference.runner`), the volume pipeline
(:mod:`~amif_core.inference.pipeline`) and the weights file (:mod:`~amif_core.inference.weights`)."""

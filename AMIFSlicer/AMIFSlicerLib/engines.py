"""Where AMIF's network runs for the Slicer logic: in this process, or in a worker process of its own.

:class:`AMIFSlicerLib.logic.AMIFSceneLogic` turns nodes into SimpleITK images
in world space, hands them to an engine, and turns what comes back into a key
file and a node. The two engines answer the same two calls:

* :class:`InProcessEngine` imports torch here (scripts, the headless tests'
  reference, the benchmark's baseline);
* :class:`AMIFSlicerLib.worker.WorkerEngine` runs ``python -m
  amif_core.cli.worker`` (what the panel uses: torch never enters Slicer).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Protocol

import numpy as np
import SimpleITK as sitk

from amif_core.runtime import runner  # torch-free until a run
from amif_core.runtime.callbacks import Cancel, Notice, Progress

if TYPE_CHECKING:  # both import torch: only type checkers import them here
    from amif_core import AMIFModel
    from amif_core.key.core import Key



@dataclass
class EngineResult:
    """What a run gives back: the output ``image`` (protected, or unlocked), the ``key`` (protect only) and the
    ``provenance``: "device" (the one that ran), "modelId" (the weights' SHA-256), "modelVersion"."""

    image: sitk.Image
    key: Key | None
    provenance: dict[str, str] = field(default_factory=dict)


class Engine(Protocol):
    """A place to run protect and unlock (see the module's docstring)."""

    def protect(self, mri: sitk.Image, other: sitk.Image, identifier: str, colourTable: str | None, device: str,
                progress: Progress | None, cancel: Cancel | None, notice: Notice,
                ownerSecret: str | Path | None = None) -> EngineResult: ...

    def unlock(self, protected: sitk.Image, key: Key, device: str, progress: Progress | None,
               cancel: Cancel | None, notice: Notice) -> EngineResult: ...


class InProcessEngine:
    """Runs the network in this process; models are loaded once per device and weights file. ``weightsPath``
    overrides the shipped default weights."""

    def __init__(self, weightsPath: str | Path | None = None) -> None:
        self.weightsPath = Path(weightsPath) if weightsPath is not None else None
        self._models: dict[tuple[str, Path], AMIFModel] = {}

    def weights(self, chosen: str | Path | None = None) -> Path:
        """The weights file a run uses: ``chosen``, else :attr:`weightsPath`, else the shipped default."""
        from amif_core.inference.weights import DEFAULT_WEIGHTS

        return Path(chosen or self.weightsPath or DEFAULT_WEIGHTS)

    def model(self, device: str, weights: str | Path | None = None) -> AMIFModel:
        """The model of :meth:`weights` on ``device``, loaded once per device and file."""
        import amif_core

        path = self.weights(weights)
        if (device, path) not in self._models:
            self._models[device, path] = amif_core.load_model(device, weights=path)
        return self._models[device, path]

    def _provenance(self, device: str, weights: Path) -> dict[str, str]:
        model = self.model(device, weights)
        return {"device": device, "modelId": model.model_id,
                "modelVersion": f"{weights.stem} (weights format {model.metadata.get('version', '?')})"}

    @staticmethod
    def _planned(image: sitk.Image, axis: int, device: str, run: Callable[[str, int], Any], notice: Notice
                 ) -> tuple[Any, str]:
        """``run(device, batch size)`` for ``image`` sliced along ``axis`` under the runner's plan and fallback."""
        shape = sitk.GetArrayViewFromImage(image).shape
        return runner.plan_and_run(int(np.prod(shape)), tuple(s for i, s in enumerate(shape) if i != axis), device,
                                   run, notice)

    def protect(self, mri: sitk.Image, other: sitk.Image, identifier: str, colourTable: str | None, device: str,
                progress: Progress | None, cancel: Cancel | None, notice: Notice,
                ownerSecret: str | Path | None = None) -> EngineResult:
        """:func:`amif_core.inference.pipeline.protect_volume` under the runner's memory plan and fallback, the
        fusion marked by the owner secret file ``ownerSecret`` (None: ``$AMIF_OWNER_SECRET``, else the demo secret,
        announced through ``notice``)."""
        from amif_core.inference.pipeline import protect_volume
        from amif_core.io.geometry import slice_axis

        from amif_core.tracing.secret import owner_secret

        weights = self.weights()
        owner = owner_secret(notice, ownerSecret)

        def run(runDevice: str, batchSize: int) -> tuple[sitk.Image, Any]:
            return protect_volume(self.model(runDevice, weights), mri, other, identifier, colour_table=colourTable,
                                  progress=progress, cancel=cancel, notice=notice, batch_size=batchSize, owner=owner)

        (image, key), ranOn = self._planned(mri, slice_axis(mri), device, run, notice)
        return EngineResult(image, key, self._provenance(ranOn, weights))

    def unlock(self, protected: sitk.Image, key: Key, device: str, progress: Progress | None,
               cancel: Cancel | None, notice: Notice) -> EngineResult:
        """:func:`amif_core.inference.pipeline.unlock_volume` with the weights that made the key when they ship
        (keys made before a weights upgrade still unlock)."""
        from amif_core.inference.pipeline import unlock_volume
        from amif_core.inference.weights import weights_for_key

        weights = self.weights(weights_for_key(key.model_id, self.weightsPath))

        def run(runDevice: str, batchSize: int) -> sitk.Image:
            return unlock_volume(self.model(runDevice, weights), protected, key, progress=progress, cancel=cancel,
                                 batch_size=batchSize)

        image, ranOn = self._planned(protected, key.axis, device, run, notice)
        return EngineResult(image, None, self._provenance(ranOn, weights))

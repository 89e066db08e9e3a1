"""Attacks on the visible identifier: can it be removed without the key?

``amif attack-eval`` protects every validation slice of the Harvard pairs and
tries to recover the clean fusion ``f`` from the protected image ``p`` alone:

* :mod:`~amif_core.evaluation.attacks.inpainting`: OpenCV Telea / Navier-Stokes and
  scikit-image biharmonic inpainting of the true identifier mask;
* :mod:`~amif_core.evaluation.attacks.mask_estimation`: a mask estimated from ``p`` alone,
  then Telea inpainting;
* :mod:`~amif_core.evaluation.attacks.remover`: a small U-Net trained on leaked
  (protected, clean) pairs of the training patients;
* :mod:`~amif_core.evaluation.attacks.wrong_keys`: unlocking with keys that do not belong
  to the image, forced past the fingerprint check;
* :mod:`~amif_core.evaluation.attacks.filters`: median filtering and JPEG re-encoding.

:mod:`~amif_core.evaluation.attacks.runner` runs them all, :mod:`~amif_core.evaluation.attacks.scoring`
measures each result against ``f`` and :mod:`~amif_core.evaluation.attacks.report` prints
the tables and draws the picture. OpenCV and scikit-image are optional
dependencies (``pip install "amif-core[attack]"``); the modules that need them
import them through :func:`require`.
"""
from __future__ import annotations

import importlib
from types import ModuleType

INSTALL_HINT = 'pip install "amif-core[attack]"'


def require(module: str) -> ModuleType:
    """Import an optional attack dependency, or raise ImportError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise ImportError(f"{module} is needed for the attack benchmark; install it with: {INSTALL_HINT}") from error

"""Qt-free logic of the AMIFSlicer module: everything but the panel itself.

Everything here runs on plain MRML (``slicer-core`` outside Slicer), so it is
tested headless. At import time it loads only the parts of ``amif_core`` that
need nothing beyond what Slicer ships (numpy, SimpleITK): the constants, the
errors, the colour tables, the run policy (:mod:`amif_core.runtime`) and the
worker protocol. What needs PyTorch, Pillow or cryptography is imported inside
the functions that run protect or unlock, after the panel's dependency check:
the module must load in a Slicer without them, and installing them is the
user's decision (see :mod:`AMIFSlicerLib.dependencies`).

Main entry point::

    from AMIFSlicerLib.logic import AMIFSceneLogic
    logic = AMIFSceneLogic(scene)
    protected = logic.protect(mriNode, otherNode, keyPath)
    unlocked = logic.unlock(protected, keyPath)
"""

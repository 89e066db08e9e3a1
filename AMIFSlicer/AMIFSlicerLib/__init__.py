"""Qt-free logic of the AMIFSlicer module: everything but the panel itself.

Everything here runs on plain MRML (``slicer-core`` outside Slicer), so it is
tested headless. Nothing here imports ``amif_core`` or ``torch`` at import
time: the module must load in a Slicer without PyTorch, and installing it is
the user's decision (see :mod:`AMIFSlicerLib.dependencies`).

Main entry point::

    from AMIFSlicerLib.logic import AMIFSceneLogic
    logic = AMIFSceneLogic(scene)
    protected = logic.protect(mriNode, otherNode, keyPath)
    unlocked = logic.unlock(protected, keyPath)
"""

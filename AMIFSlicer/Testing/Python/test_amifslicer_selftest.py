"""The module's self-test checks (AMIFSlicerLib.selftest), run headless on real MRML as Slicer runs them."""
from __future__ import annotations

import unittest

from AMIFSlicerLib.selftest import checkProtectAndUnlock, checkRejectsWrongInputs


def test_the_self_test_passes_on_real_mrml(workspace):
    said: list[str] = []
    case = unittest.TestCase()
    checkProtectAndUnlock(case, workspace.logic, workspace.directory, said.append, show=True)
    checkRejectsWrongInputs(case, workspace.logic, workspace.directory, said.append)
    assert said[-2:] == ["Protect and unlock passed", "Wrong inputs rejected"]

"""The atomic writer's former address, kept for code that still imports it from here (the owner secret of
:mod:`amif_core.tracing.secret`); the writer itself is :mod:`amif_core.atomic`, below both ``key`` and ``io``."""
from amif_core.atomic import PRIVATE_MODE, PUBLIC_MODE, Output, check_outputs, write_atomically

__all__ = ["PRIVATE_MODE", "PUBLIC_MODE", "Output", "check_outputs", "write_atomically"]

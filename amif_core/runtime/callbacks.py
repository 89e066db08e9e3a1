"""The callbacks a run takes, one definition for every front end and the core.

``Progress(done, total)``: slices done of the total (a retry after an
out-of-memory error starts a new pass from 0); ``Cancel()``: True stops the
run at its next slice; ``Notice(text)``: a one-line remark for the user
(resampling, memory plan, fallbacks).
"""
from __future__ import annotations

from typing import Callable

Progress = Callable[[int, int], None]
Cancel = Callable[[], bool]
Notice = Callable[[str], None]

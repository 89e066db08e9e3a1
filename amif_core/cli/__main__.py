"""``python -m amif_core.cli``: the ``amif`` command line."""
import sys

from amif_core.cli.main import main

sys.exit(main())

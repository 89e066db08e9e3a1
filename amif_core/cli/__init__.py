"""The ``amif`` command line: :mod:`~amif_core.cli.main` (parser, exit codes), the user commands
(:mod:`~amif_core.cli.user`) and the model owner's (:mod:`~amif_core.cli.owner`, imported lazily)."""

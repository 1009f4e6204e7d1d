"""Subcommands of the ``world-gym`` CLI: light modules that import their heavy parts only when run."""

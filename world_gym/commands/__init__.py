"""Subcommands of the ``world-gym`` CLI that belong to no other module."""

"""Env families, one module each (``world_gym.envs``): the Push-T task package (:mod:`world_gym.envs.pusht`)
and the official IRASim checkpoints (:mod:`.languagetable`, :mod:`.rt1`, :mod:`.bridge`, sharing
:mod:`.irasim_official`).

Nothing is imported here: a family module is loaded by name when an env of it is built
(:func:`world_gym.registration.get_family`, through this package's ``world_gym.env_families`` entry
points or :data:`world_gym.env_catalog.CATALOG`), so reading a Push-T frame does not build every family.
"""

"""``world-gym envs``: the registered env ids, their default models and measured figures."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from world_gym.env_catalog import CATALOG, CatalogEntry


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``envs`` to the ``world-gym`` command line."""
    p = subparsers.add_parser(
        "envs", help="list the registered env ids, their default models and measured figures",
        description="List the env ids that `import world_gym` registers, with the default world model, what "
        "the env is, its measured fidelity and speed, and the page that documents it. Reads a static table: "
        "no model is loaded.",
    )
    p.add_argument("--format", choices=["text", "markdown", "json"], default="text",
                   help="text (one block per env, the default), a markdown table, or one JSON object per env")
    p.set_defaults(func=run)


def format_text(entries: tuple[CatalogEntry, ...] = CATALOG) -> str:
    """The catalog as one block per env, for a terminal."""
    blocks = []
    for e in entries:
        rows = [("model", e.model), ("what", e.summary), ("fidelity", e.fidelity), ("speed", e.speed), ("docs", e.card)]
        blocks.append("\n".join([e.env_id] + [f"  {key:<9} {value}" for key, value in rows]))
    return "\n\n".join(blocks)


def format_table(entries: tuple[CatalogEntry, ...] = CATALOG) -> str:
    """The catalog as a markdown table (id, model, what it is, fidelity, speed, card)."""
    lines = ["| env id | default model | what it is | measured fidelity | speed | card |",
             "| --- | --- | --- | --- | --- | --- |"]
    for e in entries:
        lines.append(f"| {e.env_id} | {e.model} | {e.summary} | {e.fidelity} | {e.speed} | {e.card} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Print the catalog in ``args.format``."""
    if args.format == "json":
        for entry in CATALOG:
            print(json.dumps(asdict(entry)))
    else:
        print(format_table() if args.format == "markdown" else format_text())
    return 0

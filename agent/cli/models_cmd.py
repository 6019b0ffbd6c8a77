"""`weightwarden models [--json]`: the logical models of the inventory (read-only)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from weightwarden.agent.cli.output import EXIT_OK, add_config_options, config_from, human_size, print_table
from weightwarden.agent.cli.status_cmd import STATUS_KEY, staleness
from weightwarden.agent.models import LogicalModel, catalog
from weightwarden.agent.serving.section import servers_in, serving_lines
from weightwarden.agent.store import Store


def register(commands: Any) -> None:
    parser = commands.add_parser(
        "models", help="list logical models (files grouped into the model they belong to)",
        description="List the logical models of the inventory: name, formats, file count, total size, "
                    "parameters, dtypes, architecture, for Hugging Face cache files the public repo id, whether "
                    "it is protected and why (the [inventory] protect policy), and where it was found "
                    "(protected root, discovery pass, a new file written). Then the serving section: which listening "
                    "process has a protected model loaded, where, how far it reaches, its protocol, whether it "
                    "answers without credentials, and each peer's volume (from the running agent; docs/serving.md).")
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    add_config_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    config = config_from(args)
    store = Store(config.database_path, read_only=True)
    try:
        models = catalog(store.model_files())
        raw = store.state(STATUS_KEY)
    finally:
        store.close()
    snapshot = json.loads(raw) if raw else None
    running = snapshot is not None and not staleness(snapshot)[0]
    servers = servers_in(snapshot) if running else []
    if args.json:
        for model in models:
            serving = [s.to_dict() for s in servers if model.name in s.models]
            print(json.dumps({**model.to_dict(), "serving": serving}, sort_keys=True))
        return EXIT_OK
    print_table([(str(m.files), human_size(m.size), _count(m.parameters), ",".join(m.dtypes) or "-",
                  ",".join(m.formats), m.architecture or "-", m.repo_id or "-", _protected(m), "; ".join(m.found_by),
                  m.name) for m in models],
                ("FILES", "SIZE", "PARAMS", "DTYPES", "FORMATS", "ARCH", "HF REPO", "PROTECTED", "FOUND BY", "MODEL"))
    print()
    if not running:
        print("serving:   not known (the agent is not running: it finds model servers as they listen)")
    elif snapshot is not None and "serving" not in snapshot:
        print("serving:   not watched (needs the agent in system mode, as root, on Linux)")
    else:
        for line in serving_lines(servers):
            print(line)
    return EXIT_OK


def _protected(model: LogicalModel) -> str:
    """"yes: private (all-private policy)", "no: public: Hugging Face repo org/name at abc123"."""
    return ("yes: " if model.protected else "no: ") + "; ".join(model.protect_reasons)


def _count(value: int | None) -> str:
    if value is None:
        return "-"
    for unit, scale in (("B", 10**9), ("M", 10**6), ("K", 10**3)):
        if value >= scale:
            return f"{value / scale:.1f}{unit}"
    return str(value)

"""`weightwarden prints export FILE`, `prints import FILE`, `prints list`: public model prints.

Tensors matching public weights are no evidence that a private model was copied (agent/similarity). The
agent knows the public models on its own machine (Hugging Face cache, Ollama library); `export` writes
their prints (and the imported ones) so other machines of the fleet can `import` them. Importing writes
into the agent's data directory: root's in system mode, so only an administrator declares weights public.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from weightwarden.agent.cli.output import EXIT_OK, UsageError, add_config_options, config_from, print_table
from weightwarden.agent.events import TensorPrint
from weightwarden.agent.similarity import imported
from weightwarden.agent.similarity.public_prints import PrintsFileError, PublicModel, read, write
from weightwarden.agent.store import Store
from weightwarden.agent.store.store import StoreError


def register(commands: Any) -> None:
    parser = commands.add_parser("prints", help="export, import and list public model prints")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", parser_class=type(parser))
    actions.required = True
    export = actions.add_parser(
        "export", help="write the prints of the public models this machine knows to FILE ('-': stdout)",
        description="Write the tensor prints (corners, never weights) of the public models this machine knows: "
                    "Hugging Face cache and Ollama library models, and the imported ones.")
    export.add_argument("file", metavar="FILE")
    add_config_options(export)
    export.set_defaults(run=run_export)
    importing = actions.add_parser(
        "import", help="declare the models of a prints file public (the agent reads it within seconds)")
    importing.add_argument("file", metavar="FILE")
    add_config_options(importing)
    importing.set_defaults(run=run_import)
    listing = actions.add_parser("list", help="the imported prints files and their models")
    add_config_options(listing)
    listing.set_defaults(run=run_list)


def run_export(args: argparse.Namespace) -> int:
    config = config_from(args)
    models = [*_known_public(config.database_path), *_imported(config.data_dir)]
    try:
        with (contextlib.nullcontext(sys.stdout) if args.file == "-"
              else open(args.file, "w", encoding="utf-8")) as out:
            count = write(out, models)
    except OSError as error:
        raise UsageError(f"{args.file}: {error.strerror or error}") from None
    if args.file != "-":
        print(f"wrote {count} public models ({sum(len(m.tensors) for m in models)} tensors) to {args.file}")
    return EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    config = config_from(args)
    try:
        with open(args.file, "rb") as source:
            models = read(source, args.file)
    except PrintsFileError as error:
        raise UsageError(f"{error}; nothing was imported") from None
    except OSError as error:
        raise UsageError(f"{args.file}: {error.strerror or error}") from None
    try:
        saved = imported.save(config.data_dir, args.file, models)
    except PermissionError as error:
        raise UsageError(f"{error.filename or config.data_dir}: permission denied; only the agent's administrator "
                         "can declare models public (run with sudo in system mode)") from None
    except OSError as error:
        raise UsageError(f"{config.data_dir}: {error.strerror or error}; nothing was imported") from None
    print(f"imported {len(models)} public models ({sum(len(m.tensors) for m in models)} tensors) as {saved}")
    return EXIT_OK


def run_list(args: argparse.Namespace) -> int:
    config = config_from(args)
    rows = []
    for path in sorted(_import_files(config.data_dir)):
        try:
            models = imported.load(path)
        except (OSError, PrintsFileError) as error:
            rows.append((os.path.basename(path), "-", "-", f"unreadable: {error}"))
            continue
        for model in models:
            rows.append((os.path.basename(path), model.model, str(len(model.tensors)), model.origin or "-"))
    print_table(rows, ("FILE", "MODEL", "TENSORS", "ORIGIN"))
    return EXIT_OK


def _known_public(database: str) -> Iterator[PublicModel]:
    """The public model files the agent inventoried, one entry per model name."""
    try:
        store = Store(database, read_only=True)
    except StoreError:
        return
    try:
        files = store.model_files()
    finally:
        store.close()
    grouped: dict[str, tuple[str, list[TensorPrint]]] = {}
    for file in files:
        if file.public:
            origin = file.provenance.reason.removeprefix("public: ") if file.provenance else ""
            grouped.setdefault(file.model, (origin, []))[1].extend(t for t in file.tensors if t.block)
    for model, (origin, tensors) in sorted(grouped.items()):
        yield PublicModel(model, origin, tuple(tensors))


def _import_files(data_dir: str) -> list[str]:
    directory = imported.folder(data_dir)
    try:
        return [os.path.join(directory, n) for n in os.listdir(directory)
                if n.endswith(imported.SUFFIX) and not n.startswith(".")]
    except OSError:
        return []


def _imported(data_dir: str) -> Iterator[PublicModel]:
    for path in sorted(_import_files(data_dir)):
        with contextlib.suppress(OSError, PrintsFileError):
            yield from imported.load(path)

"""What a transfer tool or an archiver was told to do, from its command line.

`parse_transfer` names the tool, the local paths it sends and where they go: `s3://bucket/key`,
`gs://bucket/key`, `https://account.blob.core.windows.net/container`, `hf://org/repo`, a git remote, or
`host:path` for scp/rsync/sftp. `parse_staging` names the archive, compressed, encrypted or split output an
archiver writes. Pure text functions: the engine decides what they mean. The engine calls `transfer_of` and
`staging_of` with the tool as the process's identity names it (detect/tools.py), never its argv[0].
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from functools import lru_cache

TRANSFER_TOOLS = ("scp", "sftp", "rsync", "rclone", "aws", "gsutil", "gcloud", "azcopy", "curl", "wget", "hf",
                  "huggingface-cli", "git", "git-lfs", "s3cmd", "lftp", "smbclient", "nc", "ncat", "socat")
STAGING_TOOLS = ("tar", "zip", "7z", "7za", "7zz", "gzip", "pigz", "bzip2", "xz", "zstd", "pzstd", "lz4", "gpg",
                 "gpg2", "openssl", "age", "split", "rar")


@dataclass(frozen=True, slots=True)
class Transfer:
    tool: str
    destination: str | None  # normalised: s3://b/k, gs://b/k, hf://org/repo, git remote, host[:path], URL
    kind: str  # bucket | hub | git | host | url | unknown
    host: str | None = None
    sources: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Staging:
    tool: str
    operation: str  # archive | compress | encrypt | split
    output: str | None
    inputs: tuple[str, ...] = ()


def _split(command_line: str) -> list[str]:
    try:
        return shlex.split(command_line)
    except ValueError:
        return command_line.split()


def _tool(argv: list[str]) -> tuple[str, list[str]]:
    """The tool's name and its arguments, looking through `python -m`, `sudo`, `env` and friends."""
    while argv:
        name = os.path.basename(argv[0])
        if name in ("sudo", "env", "nice", "ionice", "nohup", "time", "stdbuf", "timeout"):
            argv = [a for a in argv[1:] if not re.match(r"^(-|\w+=)", a) or a.startswith("--")][0:]
            argv = argv[1:] if name == "timeout" and argv else argv
            continue
        if re.match(r"^python[\d.]*$", name) and len(argv) > 2 and argv[1] == "-m":
            return argv[2].replace("huggingface_hub.commands.huggingface_cli", "huggingface-cli"), argv[3:]
        return name, argv[1:]
    return "", []


_REMOTE = re.compile(r"^(?:(?P<user>[^@/\s]+)@)?(?P<host>\[[^\]]+\]|[A-Za-z0-9._-]+):(?P<path>.*)$")


def _remote(arg: str) -> tuple[str, str | None] | None:
    """`[user@]host:path` as scp/rsync write it (not a local path with a colon, not a URL)."""
    if "://" in arg or arg.startswith(("/", "./", "../", "~")):
        return None
    found = _REMOTE.match(arg)
    if not found or (len(found.group("host")) == 1 and not found.group("user")):  # C:\ on Windows
        return None
    host = found.group("host").strip("[]")
    return f"{host}:{found.group('path')}", host


@lru_cache(maxsize=4096)  # the same command line opens many files (rsync -a of a model folder)
def parse_transfer(command_line: str | None) -> Transfer | None:
    """The transfer a command line asks for, naming the tool by argv[0] (for text without a process: the
    engine names the tool by what the process runs, detect/tools.py, and calls transfer_of)."""
    if not command_line:
        return None
    tool, args = _tool(_split(command_line))
    return transfer_of(tool, tuple(args))


@lru_cache(maxsize=4096)
def transfer_of(tool: str, arguments: tuple[str, ...]) -> Transfer | None:
    """The transfer `tool` run with `arguments` asks for, or None when it is not a transfer tool sending."""
    args = list(arguments)
    positional = [a for a in args if not a.startswith("-")]
    if tool in ("scp", "rsync", "sftp"):
        remotes = [(a, _remote(a)) for a in positional]
        sent = [r for a, r in remotes[-1:] if r]  # the last operand is the destination
        if tool == "rsync" and any(a.startswith("rsync://") for a in positional[-1:]):
            url = positional[-1]
            return Transfer(tool, url, "host", _url_host(url), tuple(positional[:-1]))
        if tool == "sftp" and positional:
            found = _remote(positional[-1]) or (positional[-1], positional[-1].split("@")[-1])
            return Transfer(tool, found[0], "host", found[1])
        if not sent:
            return None
        return Transfer(tool, sent[0][0], "host", sent[0][1], tuple(a for a, r in remotes[:-1] if not r))
    if tool == "rclone":
        verbs = [a for a in positional if a in ("copy", "sync", "move", "copyto", "moveto", "rcat")]
        if not verbs or len(positional) < 2:
            return None
        destination = positional[-1]
        remote = destination.split(":", 1)[0] if ":" in destination else None
        return Transfer(tool, f"rclone://{destination}", "bucket", remote, tuple(positional[1:-1]))
    if tool in ("aws", "s3cmd"):
        urls = [a for a in positional if a.startswith("s3://")]
        if not urls or not any(v in positional for v in ("cp", "sync", "mv", "put")):
            return None
        destination = positional[-1]
        if not destination.startswith("s3://"):
            return None  # downloading from S3 is not exfiltration
        return Transfer(tool, destination, "bucket", destination[5:].split("/", 1)[0],
                        tuple(a for a in positional if not a.startswith("s3://") and a not in ("s3", "cp", "sync",
                                                                                                  "mv", "put")))
    if tool in ("gsutil", "gcloud"):
        destination = positional[-1] if positional else ""
        if not destination.startswith("gs://") or not any(v in positional for v in ("cp", "rsync", "mv")):
            return None
        return Transfer(tool, destination, "bucket", destination[5:].split("/", 1)[0],
                        tuple(a for a in positional[:-1] if not a.startswith("gs://")
                              and a not in ("storage", "cp", "rsync", "mv")))
    if tool == "azcopy":
        destination = positional[-1] if positional else ""
        if "://" not in destination or not any(v in positional for v in ("copy", "cp", "sync")):
            return None
        return Transfer(tool, destination.split("?", 1)[0], "bucket", _url_host(destination),
                        tuple(a for a in positional[1:-1] if "://" not in a))
    if tool in ("hf", "huggingface-cli"):
        if not positional or positional[0] != "upload" or len(positional) < 2:
            return None
        return Transfer(tool, f"hf://{positional[1]}", "hub", "huggingface.co", tuple(positional[2:3]))
    if tool in ("git", "git-lfs"):
        words = positional if tool == "git" else ["lfs", *positional]
        if words[:2] == ["lfs", "push"] and len(words) > 2:
            return Transfer("git lfs", words[2], "git", _url_host(words[2]) if "://" in words[2] else None)
        if words[:1] == ["push"]:
            remote = words[1] if len(words) > 1 else "origin"
            return Transfer("git", remote, "git", _url_host(remote) if "://" in remote else None)
        return None
    if tool in ("curl", "wget"):
        return _http_upload(tool, args)
    return None


def _http_upload(tool: str, args: list[str]) -> Transfer | None:
    uploads: list[str] = []
    urls: list[str] = []
    index = 0
    while index < len(args):
        arg = args[index]
        value = args[index + 1] if index + 1 < len(args) else ""
        if tool == "curl" and arg in ("-T", "--upload-file"):
            uploads.append(value)
            index += 1
        elif (tool == "curl" and arg in ("-F", "--form") and "=@" in value) or (
                tool == "curl" and arg in ("-F", "--form") and "=<" in value):
            uploads.append(re.split(r"=[@<]", value, maxsplit=1)[1].split(";", 1)[0])
            index += 1
        elif tool == "curl" and arg in ("-d", "--data", "--data-binary", "--data-raw") and value.startswith("@"):
            uploads.append(value[1:])
            index += 1
        elif tool == "wget" and arg.startswith(("--post-file=", "--body-file=")):
            uploads.append(arg.split("=", 1)[1])
        elif tool == "wget" and arg in ("--post-file", "--body-file"):
            uploads.append(value)
            index += 1
        elif "://" in arg:
            urls.append(arg)
        index += 1
    if not uploads:
        return None
    url = urls[-1] if urls else None
    return Transfer(tool, url, "url", _url_host(url) if url else None, tuple(uploads))


def _url_host(url: str) -> str | None:
    found = re.match(r"^[a-z0-9+.-]+://(?:[^@/]*@)?(\[[^\]]+\]|[^:/?#]+)", url, re.IGNORECASE)
    return found.group(1).strip("[]") if found else None


@lru_cache(maxsize=4096)
def parse_staging(command_line: str | None) -> Staging | None:
    """What an archiver, compressor, encrypter or splitter writes (tool named by argv[0]: see parse_transfer)."""
    if not command_line:
        return None
    tool, args = _tool(_split(command_line))
    return staging_of(tool, tuple(args))


@lru_cache(maxsize=4096)
def staging_of(tool: str, arguments: tuple[str, ...]) -> Staging | None:
    """What `tool` run with `arguments` writes, or None when it is not an archiver, compressor, encrypter or
    splitter."""
    args = list(arguments)
    positional = [a for a in args if not a.startswith("-")]
    if tool == "tar":
        output = _option(args, ("-f", "--file")) or _bundled_f(args)
        return Staging(tool, "archive", output, tuple(a for a in positional if a != output and a[:1] != "c"))
    if tool in ("zip", "rar"):
        words = positional[1:] if tool == "rar" else positional
        return Staging(tool, "archive", words[0] if words else None, tuple(words[1:]))
    if tool in ("7z", "7za", "7zz"):
        return Staging(tool, "archive", positional[1] if len(positional) > 1 else None, tuple(positional[2:]))
    if tool in ("gzip", "pigz", "bzip2", "xz", "zstd", "pzstd", "lz4"):
        if any(a in ("-d", "--decompress", "-t", "--test", "-l", "--list") for a in args):
            return None
        suffix = {"gzip": ".gz", "pigz": ".gz", "bzip2": ".bz2", "xz": ".xz", "zstd": ".zst", "pzstd": ".zst",
                  "lz4": ".lz4"}[tool]
        output = _option(args, ("-o",))
        stdout = any(a in ("-c", "--stdout") for a in args)
        inputs = tuple(a for a in positional if a != output)
        return Staging(tool, "compress", output or (None if stdout or not inputs else inputs[0] + suffix), inputs)
    if tool in ("gpg", "gpg2"):
        if not any(a in ("-c", "--symmetric", "-e", "--encrypt", "-se", "-es") for a in args):
            return None
        output = _option(args, ("-o", "--output"))
        inputs = tuple(a for a in positional if a != output and a != _option(args, ("-r", "--recipient")))
        return Staging(tool, "encrypt", output or (inputs[-1] + ".gpg" if inputs else None), inputs[-1:])
    if tool == "openssl":
        if not positional or (positional[0] not in ("enc", "smime", "cms") and not positional[0].startswith("aes")):
            return None
        if "-d" in args:
            return None
        inputs = tuple(x for x in [_option(args, ("-in",))] if x)
        return Staging(tool, "encrypt", _option(args, ("-out",)), inputs)
    if tool == "age":
        if any(a in ("-d", "--decrypt") for a in args):
            return None
        output = _option(args, ("-o", "--output"))
        inputs = tuple(a for a in positional if a != output and a != _option(args, ("-r", "--recipient", "-R")))
        return Staging(tool, "encrypt", output, inputs[-1:])
    if tool == "split":
        values_after = {_option(args, ("-b", "--bytes", "-l", "--lines", "-n", "--number", "-a",
                                       "--suffix-length"))}
        words = [a for a in positional if a not in values_after]
        return Staging(tool, "split", (words[1] if len(words) > 1 else "x") + "*", tuple(words[:1]))
    return None


def _option(args: list[str], names: tuple[str, ...]) -> str | None:
    for index, arg in enumerate(args):
        if arg in names and index + 1 < len(args):
            return args[index + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def _bundled_f(args: list[str]) -> str | None:
    """`tar czf OUT ...` / `tar -czf OUT`: the operand after a bundle of short flags ending in f."""
    for index, arg in enumerate(args):
        flags = arg.lstrip("-")
        if not arg.startswith("--") and flags.isalpha() and "f" in flags and index + 1 < len(args):
            return args[index + 1]
    return None

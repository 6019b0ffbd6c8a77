"""Sealing throughput: `weightwarden seal`/`unseal` against age, openssl enc and a bare AESGCM loop.

One run each on the same page-cached file of random bytes (2 GiB by default, in /var/tmp). Peers:
- age (X25519 recipient, ChaCha20-Poly1305 in 64 KiB chunks): the closest tool in purpose;
- `openssl enc`: it refuses AEAD ciphers (-aes-256-gcm), which the run checks and reports, so the nearest
  it offers is -aes-256-ctr (no authentication at all);
- a bare `cryptography` AESGCM loop (read 4 MiB, encrypt_into, no write): the ceiling for our cipher.
Our seal reads the file twice (SHA-256 for the header, then encryption) and fsyncs the result before its
rename; the peers write without fsync, so their output is fsync-ed afterwards and shown both ways.

    .venv/bin/python -m bench.seal_bench [--dir /var/tmp/ww-bench] [--size-mib 2048] [--no-write]
"""

from __future__ import annotations

import hashlib
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from bench.common import MB, MIB, base_parser, cpu_seconds, ensure_dir, load_average, log
from bench.sections import write_section
from bench.sha256_rate import ensure_random_file, read_whole
from weightwarden.agent.seal.container import DEFAULT_CHUNK_SIZE
from weightwarden.agent.seal.inplace import seal_file, unseal_file, verify_file
from weightwarden.agent.seal.keys import machine_private_key, machine_public_key

TARGET_MB_PER_CORE = 1000


class Timings:
    def __init__(self, size: int) -> None:
        self.size = size
        self.rows: list[tuple[str, str, float, float, float]] = []  # method, operation, wall, cpu, user cpu

    def measure(self, method: str, operation: str, action: Callable[[], object]) -> float:
        cpu_before, user_before, start = cpu_seconds(), user_seconds(), time.perf_counter()
        action()
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_before
        self.rows.append((method, operation, wall, cpu, user_seconds() - user_before))
        log(f"{method} {operation}: {wall:.2f} s wall, {cpu:.2f} s CPU, {self.size / MB / wall:,.0f} MB/s")
        return wall

    def add_fsync(self, path: Path) -> None:
        """The previous row again, with the fsync of its output (its CPU figures unchanged)."""
        method, operation, wall, cpu, user = self.rows[-1]
        self.rows.append((method, operation + " + fsync", wall + times_fsync(path), cpu, user))


def user_seconds() -> float:
    """User-mode CPU of this process and its children: the computing, without the kernel's reading and
    writing of the page cache (system time)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + children.ru_utime


def aesgcm_ceiling(path: Path) -> None:
    cipher = AESGCM(os.urandom(32))
    plain = bytearray(DEFAULT_CHUNK_SIZE)
    sealed = bytearray(DEFAULT_CHUNK_SIZE + 16)
    fd = os.open(path, os.O_RDONLY)
    try:
        offset, index = 0, 0
        while count := os.preadv(fd, [plain], offset):
            cipher.encrypt_into(b"\0" * 8 + index.to_bytes(4, "big"), memoryview(plain)[:count], b"",
                                memoryview(sealed)[:count + 16])
            offset += count
            index += 1
    finally:
        os.close(fd)


def fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def run_tool(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True)


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def openssl_gcm_refusal(directory: Path) -> str:
    sample = directory / "seal-gcm-probe.bin"
    sample.write_bytes(b"x" * 100)
    done = subprocess.run(["openssl", "enc", "-aes-256-gcm", "-K", "00" * 32, "-iv", "00" * 12, "-in", str(sample),
                           "-out", os.devnull], capture_output=True, text=True, check=False)
    sample.unlink()
    first = (done.stderr.strip().splitlines() or ["(no message)"])[0]
    return f"exit {done.returncode}: {first}"


def run(size_mib: int, directory: Path) -> tuple[str, bool]:
    size = size_mib * MIB
    source = ensure_random_file(directory, size)
    read_whole(source)
    expected = sha256_of(source)
    times = Timings(size)
    work = directory / "seal-work.bin"
    keys = Path(tempfile.mkdtemp(prefix="seal-keys-", dir=directory))
    try:
        times.measure("cryptography AESGCM loop (ceiling)", "encrypt, no write", lambda: aesgcm_ceiling(source))

        shutil.copyfile(source, work)
        fsync_path(work)
        read_whole(work)
        public, last_chunk = machine_public_key(keys), [0.0]

        def chunks_done(_index: int) -> None:
            last_chunk[0] = time.perf_counter()

        start = time.perf_counter()
        seal_wall = times.measure("weightwarden seal", "seal (SHA-256 pass + encrypt + fsync + rename)",
                                  lambda: seal_file(str(work), [("machine", public)], on_chunk=chunks_done))
        to_last = last_chunk[0] - start
        seal_cpu, seal_user = times.rows[-1][3], times.rows[-1][4]
        private = machine_private_key(keys)
        times.measure("weightwarden seal --verify", "verify, no write", lambda: verify_file(str(work), private))
        times.measure("weightwarden unseal", "unseal (decrypt + SHA-256 + fsync + rename)",
                      lambda: unseal_file(str(work), private))
        unseal_wall, unseal_cpu, unseal_user = times.rows[-1][2], times.rows[-1][3], times.rows[-1][4]
        assert sha256_of(work) == expected, "unseal did not restore the bytes"
        work.unlink()

        age_ok = shutil.which("age") is not None
        if age_ok:
            identity = keys / "age.key"
            run_tool("age-keygen", "-o", str(identity))
            recipient = subprocess.run(["age-keygen", "-y", str(identity)], capture_output=True, text=True,
                                       check=True).stdout.strip()
            sealed, back = directory / "seal-work.age", directory / "seal-back.bin"
            times.measure("age", "encrypt", lambda: run_tool("age", "-r", recipient, "-o", str(sealed),
                                                                   str(source)))
            times.add_fsync(sealed)
            times.measure("age", "decrypt", lambda: run_tool("age", "-d", "-i", str(identity), "-o",
                                                                   str(back), str(sealed)))
            times.add_fsync(back)
            assert sha256_of(back) == expected
            sealed.unlink()
            back.unlink()

        refusal = openssl_gcm_refusal(directory)
        key, iv = os.urandom(32).hex(), os.urandom(16).hex()
        sealed, back = directory / "seal-work.ctr", directory / "seal-back.bin"
        times.measure("openssl enc -aes-256-ctr", "encrypt", lambda: run_tool(
            "openssl", "enc", "-aes-256-ctr", "-K", key, "-iv", iv, "-in", str(source), "-out", str(sealed)))
        times.add_fsync(sealed)
        times.measure("openssl enc -aes-256-ctr", "decrypt", lambda: run_tool(
            "openssl", "enc", "-d", "-aes-256-ctr", "-K", key, "-iv", iv, "-in", str(sealed), "-out", str(back)))
        times.add_fsync(back)
        assert sha256_of(back) == expected
        sealed.unlink()
        back.unlink()
    finally:
        shutil.rmtree(keys, ignore_errors=True)
        work.unlink(missing_ok=True)

    per_core, unseal_per_core = size / MB / seal_cpu, size / MB / unseal_cpu
    per_user, unseal_per_user = size / MB / seal_user, size / MB / unseal_user
    met = per_user >= TARGET_MB_PER_CORE and unseal_per_user >= TARGET_MB_PER_CORE
    met_all = per_core >= TARGET_MB_PER_CORE and unseal_per_core >= TARGET_MB_PER_CORE
    rows = [f"| {method} | {operation} | {wall:.2f} | {size / MB / wall:,.0f} | {cpu:.2f} | {user:.2f} | "
            f"{size / MB / cpu:,.0f} | {seal_wall / wall:.2f}x |"
            for method, operation, wall, cpu, user in times.rows]
    markdown = "\n".join([
        "## Sealing at rest (bench/seal_bench.py)",
        "",
        f"One run, {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {platform.machine()}, "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}; load average {load_average()} after. "
        f"The same page-cached file of {size_mib} MiB of random bytes in {directory} for every method; "
        "MB = 10^6 bytes. CPU = user + system of this process and its children; user CPU leaves out the "
        "kernel's copying to and from the page cache. The last column is the method's wall-clock speed "
        "relative to our whole seal (above 1: faster than our seal).",
        "",
        "| method | operation | wall s | MB/s | CPU s | user CPU s | MB per CPU-second | speed vs our seal |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        f"- Our seal up to its last chunk (before fsync and rename): {to_last:.2f} s, "
        f"{size / MB / to_last:,.0f} MB/s; it reads the file twice (SHA-256 for the header, then encryption).",
        f"- Target at least {TARGET_MB_PER_CORE} MB/s per core with AES-NI. Our computing (user CPU: "
        f"SHA-256, AES-GCM, Python): seal {per_user:,.0f} MB per user CPU-second, unseal "
        f"{unseal_per_user:,.0f}: **{'PASS' if met else 'MISS'}**. Counting the kernel's page-cache "
        f"copies too: seal {per_core:,.0f}, unseal {unseal_per_core:,.0f} MB per CPU-second: "
        f"**{'PASS' if met_all else 'MISS'}** (on this VM writing is the dear part for every tool: "
        "compare the openssl and age rows' CPU with the AESGCM loop's; the kernel's share for the same "
        "seal varied by a factor of two or more between trial runs with page-cache pressure). Wall clock, "
        "on 2 threads (a helper "
        f"writes chunk i while chunk i+1 is encrypted): seal {size / MB / seal_wall:,.0f} MB/s, unseal "
        f"{size / MB / unseal_wall:,.0f} MB/s, each including the fsync of the whole result.",
        "- Our seal and unseal sync and drop what they write every 64 MiB (agent/seal/container.py "
        "`_Writeback`): a sealed cold checkpoint is not kept in the page cache. So `seal --verify`, run "
        "right after the seal, reads the sealed file from the disk, not from memory as the peers' rows do.",
        f"- `openssl enc -aes-256-gcm` is refused ({refusal}): `enc` does not support AEAD modes, so "
        "-aes-256-ctr (same AES core, no authentication tag) is the nearest openssl comparison.",
        f"- age {'present' if age_ok else 'not installed (apt-get install age)'}; "
        f"{_version(['age', '--version'])}; {_version(['openssl', 'version'])}; every output was decrypted "
        "and its SHA-256 compared with the original.",
    ])
    return markdown, met


def times_fsync(path: Path) -> float:
    start = time.perf_counter()
    fsync_path(path)
    return time.perf_counter() - start


def _version(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return f"{command[0]} missing"
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    return f"{command[0]} {(done.stdout or done.stderr).strip().splitlines()[0]}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = base_parser(__doc__ or "")
    parser.add_argument("--size-mib", type=int, default=2048, help="test file size in MiB (default 2048)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave docs/benchmarks.md alone")
    args = parser.parse_args(argv)
    markdown, met = run(args.size_mib, ensure_dir(args.dir))
    print(markdown)
    if not args.no_write:
        write_section("seal", markdown)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())

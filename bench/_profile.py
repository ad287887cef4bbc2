"""Optional py-spy sampling of a benchmark server (`--profile DIR`), summarised as text.

Throughput figures alone do not say where the server's CPU goes; sampling during a measured run
(only the thread holding the GIL) does, without changing the run's load or its figures much.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import math
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from _common import Child


def add_profile_option(p: argparse.ArgumentParser) -> None:
    """--profile DIR: where py_spy() writes, for the first measured run."""
    p.add_argument(
        "--profile",
        type=Path,
        default=None,
        metavar="DIR",
        help="py-spy the server during the first measured run; write DIR/top.txt",
    )


@contextlib.contextmanager
def py_spy(child: Child, out_dir: Path | None, duration: float) -> Iterator[None]:
    """Optionally sample the server with py-spy (raw collapsed stacks) while the block runs."""
    if out_dir is None:
        yield
        return
    binary = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "leadboard.folded"
    argv = [
        binary,
        "record",
        "--pid",
        str(child.pid),
        "--rate",
        "200",
        "--format",
        "raw",
        "--duration",
        str(max(1, math.ceil(duration))),
        "--output",
        str(raw),
        "--nonblocking",
        "--gil",  # only the thread holding the GIL: where the CPU goes, not who waits
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        yield
    finally:
        try:
            _, err = proc.communicate(timeout=duration + 30)
        except subprocess.TimeoutExpired:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
        if proc.returncode != 0:
            print(f"py-spy failed (rc {proc.returncode}): {err.decode(errors='replace')[-500:]}")
        elif raw.exists():
            summarize_profile(raw, out_dir / "top.txt")


def summarize_profile(folded: Path, out: Path, top: int = 25) -> None:
    """Top functions by own samples, and app/ functions by inclusive samples (py-spy raw)."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    for line in folded.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [
            f
            for f in stack.split(";")
            if not f.startswith("process ") and not f.startswith("thread ")
        ]
        if not frames:
            continue
        own[frames[-1]] += n
        for frame in set(frames):
            incl[frame] += n
    lines = [f"py-spy samples: {total} ({folded})", "", "Top by own samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    ours = [(f, n) for f, n in incl.most_common() if "(app/" in f][:top]
    lines += ["", "Top project functions (app/) by inclusive samples:"]
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in ours]
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))

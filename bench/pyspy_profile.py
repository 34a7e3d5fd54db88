"""Where a replica process spends its time: py-spy samples of a running pid, summarized.

    record(pid, seconds, path)  -> a running ``py-spy record`` (raw, one line per stack)
    summary(path, seconds, rate) -> text: per thread, the share of wall time it was busy,
                                    and the functions that held it (self and inclusive)

py-spy attaches from outside (ptrace, no change to the replica), samples every thread
``rate`` times a second without pausing the process (``--nonblocking``) and leaves out
idle threads (a thread waiting in epoll or a lock is not counted), so a thread's samples
divided by ``rate * seconds`` is the share of wall time it was running Python or C code.
The bench installs py-spy (``make bench``); without it, profiling is skipped with a note.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

RATE_HZ = 100
LINE = re.compile(r"^thread \((?P<tid>\d+)\): (?P<stack>.*) (?P<count>\d+)$")
FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^():]+)(?::\d+)?\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def record(pid: int, seconds: float, path: Path, rate: int = RATE_HZ) -> subprocess.Popen | None:
    """Start sampling ``pid`` for ``seconds`` into ``path``; None when py-spy is missing."""
    executable = py_spy()
    if executable is None:
        return None
    return subprocess.Popen(
        [executable, "record", "--pid", str(pid), "--duration", str(int(seconds)),
         "--rate", str(rate), "--format", "raw", "--threads", "--nonblocking", "-o", str(path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _frame_name(frame: str) -> str:
    """'flush (/x/lowpaxos/runtime/replica.py:512)' -> 'runtime/replica.py:flush'."""
    match = FRAME.match(frame)
    if match is None:
        return frame
    file = match["file"]
    for marker in ("lowpaxos/", "site-packages/", "python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
            break
    return f"{file}:{match['function']}"


def _module(name: str) -> str:
    """'runtime/replica.py:flush' -> 'runtime/replica.py'; the C event loop's own time
    shows as uvloop/asyncio's ``run`` frame (py-spy sees no C frames without --native)."""
    return name.rsplit(":", 1)[0]


def summary(path: Path, seconds: float, rate: int = RATE_HZ, top: int = 12) -> str:
    """Per thread: busy share of wall time, self samples by module, then the top functions
    by self and by inclusive samples (a function counted once per stack however deep it
    recurs; frames on nearly every stack, such as main and the event loop, left out)."""
    threads: dict[str, Counter] = defaultdict(Counter)  # thread name -> self samples
    inclusive: dict[str, Counter] = defaultdict(Counter)
    totals: Counter = Counter()
    for line in Path(path).read_text().splitlines():
        match = LINE.match(line)
        if match is None:
            continue
        frames = match["stack"].split(";")
        thread = frames[0] if frames and "(" not in frames[0] else "?"
        names = [_frame_name(f) for f in frames[1:]] if thread != "?" else \
            [_frame_name(f) for f in frames]
        count = int(match["count"])
        totals[thread] += count
        if names:
            threads[thread][names[-1]] += count
        for name in set(names):
            inclusive[thread][name] += count
    possible = seconds * rate
    lines = []
    for thread, count in totals.most_common():
        lines.append(f"thread {thread}: busy {100 * count / possible:.0f}% of wall time "
                     f"({count} samples)")
        modules: Counter = Counter()
        for name, samples in threads[thread].items():
            modules[_module(name)] += samples
        lines.append("  self, by module: " + ", ".join(
            f"{module} {100 * samples / count:.0f}%" for module, samples in modules.most_common(8)))
        lines.append("  self:")
        for name, samples in threads[thread].most_common(top):
            lines.append(f"    {100 * samples / count:5.1f}%  {name}")
        lines.append("  inclusive:")
        shown = [(name, samples) for name, samples in inclusive[thread].most_common()
                 if samples < 0.95 * count][:top]
        for name, samples in shown:
            lines.append(f"    {100 * samples / count:5.1f}%  {name}")
    return "\n".join(lines)


if __name__ == "__main__":
    # python bench/pyspy_profile.py RAW_FILE SECONDS: summarize an earlier recording.
    print(summary(Path(sys.argv[1]), float(sys.argv[2])))

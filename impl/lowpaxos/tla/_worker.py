"""One TLC run in one JVM, in a process of its own.

TLC keeps static state (its globals, the fingerprint set, the module
resolver) and ``tlc2.TLC.main`` ends with ``System.exit``, so a JVM can run
TLC once only. The parent (``lowpaxos.tla.tlc.run_tlc``) therefore starts this
module as a fresh process for each run, reads TLC's ``-tool`` output from this
process's standard output, and kills it when its time is up.

Here we do what ``TLC.main`` does, without its ``System.exit``: construct
``tlc2.TLC``, hand it the arguments, give it a module resolver rooted at the
spec's folder, call ``process()``, and leave with TLC's exit status.

Usage (by run_tlc only): python -m lowpaxos.tla._worker REQUEST_JSON
where REQUEST_JSON has ``jar``, ``jvm_options``, ``tlc_args``,
``spec_dir`` and ``library_dirs``.
"""

from __future__ import annotations

import json
import os
import sys

# Exit statuses of this worker that are not TLC's own (TLC's are below 100).
EXIT_BAD_PARAMETERS = 101
EXIT_JVM_FAILED = 102


def main(argv: list[str]) -> int:
    request = json.loads(argv[1])
    try:
        import jpype
    except ImportError as error:  # an installation error, reported to the parent
        print(f"lowpaxos.tla worker: jpype1 is not installed: {error}", file=sys.stderr)
        return EXIT_JVM_FAILED

    try:
        jpype.startJVM(*request["jvm_options"], classpath=[request["jar"]], convertStrings=False)
    except Exception as error:  # noqa: BLE001 - any JVM start failure is reported the same way
        print(f"lowpaxos.tla worker: cannot start the JVM: {error}", file=sys.stderr)
        return EXIT_JVM_FAILED

    system = jpype.JClass("java.lang.System")
    tlc_class = jpype.JClass("tlc2.TLC")
    resolver_class = jpype.JClass("util.SimpleFilenameToStream")
    exit_status = jpype.JClass("tlc2.output.EC$ExitStatus")

    tlc = tlc_class()
    arguments = jpype.JArray(jpype.JString)(request["tlc_args"])
    if not tlc.handleParameters(arguments):
        system.out.flush()
        return EXIT_BAD_PARAMETERS
    # As TLC.main does, look modules up in the spec's folder first; then in the
    # library folders, which let a module in spec/broken/ extend one in spec/.
    search_path = [request["spec_dir"], *request["library_dirs"]]
    tlc.setResolver(resolver_class(jpype.JArray(jpype.JString)(search_path)))
    error_constant = int(tlc.process())
    system.out.flush()
    system.err.flush()
    return int(exit_status.errorConstantToExitStatus(error_constant))


if __name__ == "__main__":
    sys.stdout.flush()
    status = main(sys.argv)
    sys.stdout.flush()
    sys.stderr.flush()
    # TLC leaves non-daemon JVM threads behind; shutting the JVM down politely
    # can wait on them, so leave at once.
    os._exit(status)

"""A linearizability checker for histories of the key-value store.

Theory of operation
-------------------
A history is a set of client operations, each with the time the client sent it
and the time it got the reply. It is linearizable (Herlihy & Wing 1990) when
every operation can be given one point between its invocation and its response
such that executing the operations in the order of those points on a single
sequential KVS gives every reply the client saw.

1. Partition by key. Each KVS operation reads and writes exactly one key, and
   linearizability is local (Herlihy & Wing 1990, §3.4): the history is
   linearizable iff each per-key sub-history is. Porcupine (Athalye 2017) calls
   a model with this property P-compositional. It turns one search over
   thousands of operations into many small ones.

2. Per key, search for a linearization as Wing & Gong (1993) do: keep the
   call and return events in one list sorted by time. Any call that appears
   before the first return may be linearized next (no operation that is still
   pending has responded before it was invoked). Linearizing an operation
   "lifts" its call and return out of the list; a dead end puts the last one
   back and tries the next candidate.

3. Memoize as Lowe (2017, "Testing for linearizability", §4) does: what is
   left to decide depends only on which operations are already linearized and
   on the model state, so a pair (linearized set, state) seen once is never
   explored again. The set is a Python int used as a bitset; the state of one
   key is its value (bytes, or None when absent). Unknown outcomes (below)
   make a stronger rule sound; see ``dominated`` in ``_search_key``.

4. Unknown outcomes. An operation with no response (the client timed out or
   crashed) may have taken effect at any time after its invocation, or never.
   Its return event is at +infinity, so it never blocks another operation; any
   result is accepted; and the search is done once every operation with a
   known response is linearized (Porcupine does the same for such calls).
   An unknown-outcome get changes nothing and accepts any result, so it is
   dropped before the search.

5. Values that are lost for good. Some replies with a known outcome need the
   key to hold one value (a get's result, a successful cas's expected value);
   some operations may write one value (a put, a delete writes None, a cas
   that succeeded or whose outcome is unknown). When the key does not hold a
   value v, the remaining reply that needs v and returns first must still
   find a remaining writer of v invoked no later than its response (the write
   is linearized before the reply, and both inside their intervals). A
   configuration where that fails has no linearization, so the search backs
   off at once instead of trying every order of what is left; before the
   search, the same test fails a key outright (a read of a value nobody
   wrote, or wrote only later). The simulator and the runtime tests write
   every value once, so this rule is what makes a history of many concurrent
   clients on one key cheap: a put cannot be linearized while replies that
   need the value it overwrites are still open.

6. Each client runs one operation at a time (the simulator's and the runtime
   tests' clients do), so a client's operation invoked at the very stamp its
   previous operation returned comes after that one, even though equal stamps
   of different clients overlap (below). An operation without a reply orders
   nothing: it may still take effect after the client moved on.

7. Which candidate first. A known operation whose reply fits the current state
   and that changes the state nowhere its reply fits (a get, a failed cas, a
   delete that found the key absent) is linearized at once without branching:
   if a linearization exists, one exists that starts with it, because moving
   it to the front changes no state, neither where it was nor where it goes,
   and breaks no real-time order (nothing not yet linearized returned before
   it was invoked). A put over its own value is no such operation: where the
   linearization had it, it may have written the value back. Known operations that
   change the state are tried by earliest response; unknown ones last, and
   only when they would change the state.

8. Twins. Two known operations with the same call and the same reply (the
   puts of one value that nobody reads, deletes that found the key present)
   do the same thing wherever they go, so only the one that returns first is
   offered: a linearization that starts with a later twin stays one when the
   two swap places, because every operation that had to follow the later twin
   follows the earlier one too (with equal responses, unless rule 6 ties a
   later operation of the twin's client to it; such twins are all offered).

The search is iterative (an explicit stack) so that a key with thousands of
operations cannot exhaust Python's recursion limit, and it stops at a
deadline: linearizability checking is NP-complete (Gibbons & Korach 1997), so
a pathological history must end in "don't know" (None), not in a hang. A key
that runs out of time is reported as undecided and the other keys are still
checked, so a violation on another key is found and the undecided keys are
counted (``CheckResult.keys_undecided``).

Ties: an invocation and a response with the same timestamp are taken to
overlap (calls sort before returns, as in Porcupine), except within one client
(rule 6). Two events stamped from a coarse clock in one reading have no known
real-time order, so calling them ordered could report a violation that did not
happen. Ties therefore hide real-time order, and a recorder should not make
them where it knows the order: the simulator stamps with a ``StrictClock``
(virtual time raised past the previous stamp), so its stamps never tie.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from typing import Iterable

from lowpaxos.core.api import OPS

Value = bytes | None

# Operation kinds as small ints, so the inner loop of the search compares ints.
_GET, _PUT, _DELETE, _CAS = 0, 1, 2, 3
_KIND = {"get": _GET, "put": _PUT, "delete": _DELETE, "cas": _CAS}
# The checker decomposes a history by key (P-compositionality), so it takes the
# single-key operations of the KVS; histories of the multi-key and Redis-style ones
# (mset, mget, scan, dbsize, getdel, append, strlen) are refused with a ValueError.
assert set(_KIND) <= set(OPS), "the checker's operations are KVS operations"

# How many search steps run between two looks at the clock: often enough to
# stop within a few milliseconds of the deadline, rarely enough to cost nothing.
_CLOCK_CHECK_STEPS = 4096

# A failure is explained by shrinking the failing key's history to a small
# subset that is still not linearizable. Shrinking is a courtesy to the reader,
# so it gets at most this long (and never more than the caller's time limit).
_SHRINK_S_MAX = 5.0


class _Unread:
    """The state of a key holding some value that no operation ever reads."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<a value nobody read>"


_UNREAD = _Unread()
# What the search tracks for one key: its value, None when absent.
State = bytes | None | _Unread


@dataclass(frozen=True, slots=True)
class Operation:
    """One client operation as the client saw it.

    ``invoke`` and ``response`` are times on one monotonic clock shared by all
    clients (any integer unit). ``response`` None means the outcome is unknown;
    ``result`` is then ignored.
    """

    client_id: int
    op: str  # "get" | "put" | "delete" | "cas"
    key: str
    value: bytes | None  # put/cas new value
    expected: bytes | None  # cas expected
    invoke: int
    response: int | None
    result: bytes | bool | None


class StrictClock:
    """Stamps for recording a history: each later than the one before.

    A recorder that reads a clock per event can read one value twice (a coarse
    clock, or a simulator that handles several events in one virtual
    microsecond), and the checker takes equal stamps as overlapping, which hides
    a stale read that follows a write at the same reading. Where the recorder
    sees its events one at a time (one thread, one event loop, a simulator),
    their order is real, and ``stamp`` keeps it: it returns ``now``, or one more
    than the previous stamp when ``now`` is not past it.
    """

    __slots__ = ("last",)

    def __init__(self) -> None:
        self.last: int | None = None

    def stamp(self, now: int) -> int:
        if self.last is not None and now <= self.last:
            now = self.last + 1
        self.last = now
        return now


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The verdict on a history.

    ``linearizable`` is None when the search hit the time limit before it could
    decide. ``key`` is the first key (in sorted order) found not linearizable,
    or for None the key whose search ran out of time. ``ops_involved`` is, for
    a failure, a subset of that key's operations that is by itself already not
    linearizable (as small as shrinking within the time limit could make it).
    ``keys_checked`` and ``ops_checked`` count the keys whose search finished
    and their operations; ``keys_undecided`` are the keys whose search ran out
    of time (then the verdict is None, unless another key failed).
    """

    linearizable: bool | None
    key: str | None
    explanation: str
    keys_checked: int
    ops_checked: int
    ops_involved: tuple[Operation, ...] = ()
    keys_undecided: tuple[str, ...] = ()


def check_history(ops: Iterable[Operation], time_limit_s: float = 30.0) -> CheckResult:
    """Decide whether ``ops`` is a linearizable history of the KVS.

    Raises ValueError for a malformed operation: that is a bug in whatever
    recorded the history, not a property of the system under test.
    """
    started = time.monotonic()
    deadline = started + time_limit_s
    by_key: dict[str, list[Operation]] = defaultdict(list)
    for operation in ops:
        problem = _malformed(operation)
        if problem is not None:
            raise ValueError(f"malformed operation ({problem}): {operation!r}")
        by_key[operation.key].append(operation)

    keys_checked = 0
    ops_checked = 0
    undecided: list[str] = []
    for key in sorted(by_key):
        key_ops = by_key[key]
        outcome = _search_key(key_ops, deadline)
        if outcome.verdict is None:
            # Past the deadline the remaining keys still get a search: a small
            # key is decided before the search first looks at the clock.
            undecided.append(key)
            continue
        keys_checked += 1
        ops_checked += len(key_ops)
        if outcome.verdict is False:
            shrink_deadline = min(deadline, time.monotonic() + _SHRINK_S_MAX)
            replies, context, minimal = _shrink(key_ops, shrink_deadline)
            involved = sorted(replies + context, key=lambda o: (o.invoke, o.client_id))
            return CheckResult(
                linearizable=False,
                key=key,
                explanation=_explain(key, key_ops, outcome, replies, context, minimal),
                keys_checked=keys_checked,
                ops_checked=ops_checked,
                ops_involved=tuple(involved),
                keys_undecided=tuple(undecided),
            )
    if undecided:
        shown = ", ".join(f"{key!r} ({len(by_key[key])} operations)" for key in undecided[:5])
        more = f" and {len(undecided) - 5} more" if len(undecided) > 5 else ""
        return CheckResult(
            linearizable=None,
            key=undecided[0],
            explanation=(
                f"undecided: the search ran out of its {time_limit_s} s on "
                f"{len(undecided)} of {len(by_key)} keys: {shown}{more}; the other "
                f"{keys_checked} keys ({ops_checked} operations) are linearizable"
            ),
            keys_checked=keys_checked,
            ops_checked=ops_checked,
            keys_undecided=tuple(undecided),
        )
    return CheckResult(
        linearizable=True,
        key=None,
        explanation=f"linearizable: {ops_checked} operations on {keys_checked} keys",
        keys_checked=keys_checked,
        ops_checked=ops_checked,
    )


def _malformed(operation: Operation) -> str | None:
    """Why ``operation`` cannot be part of a KVS history, or None when it can."""
    if not isinstance(operation, Operation):
        return "not an Operation"
    if operation.op not in _KIND:
        return f"unknown op, expected one of {OPS}"
    if not isinstance(operation.key, str):
        return "key is not a str"
    if not isinstance(operation.invoke, int):
        return "invoke is not an int"
    if operation.response is not None:
        if not isinstance(operation.response, int):
            return "response is not an int"
        if operation.response < operation.invoke:
            return "response before invoke"
    if operation.op == "put" and not isinstance(operation.value, bytes):
        return "put without a bytes value"
    if operation.op == "cas":
        if operation.value is not None and not isinstance(operation.value, bytes):
            return "cas value is neither bytes nor None"
        if operation.expected is not None and not isinstance(operation.expected, bytes):
            return "cas expected is neither bytes nor None"
    if operation.response is None:
        return None
    # The result types follow the KVS reply contract (core/api.py ClientReply).
    result = operation.result
    if operation.op == "get" and result is not None and not isinstance(result, bytes):
        return "get result is neither bytes nor None"
    if operation.op == "put" and result is not None:
        return "put result is not None"
    if operation.op in ("delete", "cas") and not isinstance(result, bool):
        return f"{operation.op} result is not a bool"
    return None


@dataclass(slots=True)
class _KeyOutcome:
    """What the search of one key found.

    ``searched`` are the operations the search ran on (unknown-outcome gets
    dropped), indexed as in the bitsets. ``deepest_bits`` and ``deepest_state``
    describe the partial linearization that covered the most known-outcome
    operations: the place where the search got furthest before it got stuck.
    ``unwritten`` is, when the search did not even start, a reply that needs a
    value no remaining operation can write (the pre-check of section 5).
    """

    verdict: bool | None
    searched: list[Operation]
    deepest_bits: int
    deepest_state: State
    unwritten: Operation | None = None


class _Nothing:
    """Marks "no value" in ``needs``/``writes`` (None is a value: the key absent)."""

    __slots__ = ()


_NOTHING = _Nothing()


def _search_key(key_ops: list[Operation], deadline: float) -> _KeyOutcome:
    """Wing & Gong search with Lowe's memoization over one key's operations,
    with the pruning of sections 5 to 7 of the module docstring."""
    # Section 4 of the module docstring: an unknown-outcome get has no effect.
    # Indexes follow invocation order, which ``candidates`` relies on.
    searched = sorted(
        (o for o in key_ops if not (o.response is None and o.op == "get")),
        key=lambda o: (o.invoke, o.client_id),
    )
    count = len(searched)
    kinds = [_KIND[o.op] for o in searched]
    # A value that no get returned and no cas expected behaves like any other
    # such value: every get, cas and delete answers the same from either. So
    # they are all one state, which lets the memo merge the configurations that
    # differ only in which unread value the key holds. This is what keeps a
    # history of mostly blind writes cheap.
    observed = {o.result for o in searched if o.op == "get"}
    observed.update(o.expected for o in searched if o.op == "cas")
    values: list[State] = [o.value if o.value in observed else _UNREAD for o in searched]
    values = [None if o.value is None else v for o, v in zip(searched, values)]
    expecteds = [o.expected for o in searched]
    results = [o.result for o in searched]
    known = [o.response is not None for o in searched]
    effect = [(kinds[i], values[i], expecteds[i]) for i in range(count)]
    known_total = sum(known)
    known_remaining = known_total
    if known_remaining == 0:
        return _KeyOutcome(True, searched, 0, None)

    # Section 5: the one value each known reply needs the key to hold (a get's
    # result, a successful cas's expected value), and the one value each
    # operation may leave in it (a failed cas leaves the key as it was).
    needs: list[State | _Nothing] = [_NOTHING] * count
    writes: list[State | _Nothing] = [_NOTHING] * count
    for index in range(count):
        kind = kinds[index]
        if kind == _GET:
            needs[index] = results[index]
        elif kind == _PUT:
            writes[index] = values[index]
        elif kind == _DELETE:
            writes[index] = None
        elif not known[index]:
            writes[index] = values[index]
        elif results[index] is True:
            needs[index] = expecteds[index]
            writes[index] = values[index]
    # Per value, the operations that need it by response and those that may
    # write it by invocation, for the deadline rule of section 5.
    needers: dict[State, list[int]] = defaultdict(list)
    writers: dict[State, list[int]] = defaultdict(list)
    for index in range(count):
        if needs[index] is not _NOTHING:
            needers[needs[index]].append(index)  # type: ignore[index]
        if writes[index] is not _NOTHING:
            writers[writes[index]].append(index)  # type: ignore[index]
    for indexes in needers.values():
        indexes.sort(key=lambda index: searched[index].response)  # type: ignore[arg-type,return-value]
    # ``writers`` lists are in invocation order already (``searched`` is).

    def first_open(indexes: list[int], done: int) -> int:
        """The first operation of ``indexes`` not in ``done``, or -1. Bounded by
        the list's length."""
        for index in indexes:
            if not (done >> index) & 1:
                return index
        return -1

    def lost(value: State, done: int) -> bool:
        # Section 5: the key does not hold ``value`` now; the remaining reply
        # that needs it and returns first needs some remaining operation that
        # may write it, invoked no later than that reply's response.
        needer = first_open(needers.get(value, ()), done)  # type: ignore[arg-type]
        if needer < 0:
            return False
        writer = first_open(writers.get(value, ()), done)  # type: ignore[arg-type]
        return writer < 0 or searched[writer].invoke > searched[needer].response  # type: ignore[operator]

    for value in needers:
        if value is not None and lost(value, 0):
            return _KeyOutcome(
                False, searched, 0, None, unwritten=searched[first_open(needers[value], 0)]
            )

    # Section 7: operations that never change the key wherever their reply fits
    # (a put over its own value does not qualify: elsewhere it does change it).
    pure = [
        kinds[index] == _GET
        or (known[index] and kinds[index] == _DELETE and results[index] is False)
        or (known[index] and kinds[index] == _CAS
            and (results[index] is False or searched[index].value == expecteds[index]))
        for index in range(count)
    ]

    # Section 6: a client runs one operation at a time, so an operation invoked
    # at the very stamp another of its client's operations returned follows it.
    returned_at: dict[tuple[int, int], list[int]] = defaultdict(list)
    for index, operation in enumerate(searched):
        if operation.response is not None:
            returned_at[(operation.client_id, operation.response)].append(index)
    client_before: list[int] = [0] * count  # a bitset of known operations
    followed = [False] * count  # some operation of its client follows it by rule 6
    for index, operation in enumerate(searched):
        for earlier in returned_at.get((operation.client_id, operation.invoke), ()):
            if earlier != index:
                client_before[index] |= 1 << earlier
                followed[earlier] = True
    # Section 8: known operations that are interchangeable (same call, same reply).
    twin_class = [(kinds[i], values[i], expecteds[i], results[i]) for i in range(count)]

    # The event list (Wing & Gong 1993). Entry 0 is the head sentinel and entry
    # ``tail`` the tail sentinel, so unlinking never needs a special case. A
    # return sorts after a call at the same time: ties overlap (see docstring).
    events: list[tuple[int, int, int]] = []
    for index, operation in enumerate(searched):
        events.append((operation.invoke, 0, index))
        if operation.response is not None:
            events.append((operation.response, 1, index))
    events.sort()
    tail = len(events) + 1
    entry_op = [-1] * (tail + 1)
    entry_is_return = [False] * (tail + 1)
    call_entry = [0] * count
    return_entry = [-1] * count
    for position, (_, is_return, index) in enumerate(events, start=1):
        entry_op[position] = index
        entry_is_return[position] = bool(is_return)
        if is_return:
            return_entry[index] = position
        else:
            call_entry[index] = position
    following = list(range(1, tail + 2))
    preceding = list(range(-1, tail))
    responses = [o.response for o in searched]

    def step(index: int, state: State) -> tuple[bool, State]:
        """The sequential KVS (kvs.py KeyValueStore.execute) for one key: whether
        the operation's reply fits ``state``, and the state after it."""
        kind = kinds[index]
        if kind == _GET:
            return results[index] == state, state
        if kind == _PUT:
            return True, values[index]
        if kind == _DELETE:
            return not known[index] or results[index] == (state is not None), None
        swapped = state == expecteds[index]
        ok = not known[index] or results[index] == swapped
        return ok, (values[index] if swapped else state)

    def candidates(state: State, done_known: int) -> list[tuple[int, State]]:
        # Calls before the first return may be linearized next (Wing & Gong),
        # unless their client's previous operation is still open (section 6).
        # Any order of trying them is correct; the order below is the one that
        # finds a linearization soonest. Bounded by the list length.
        #
        # Section 7: a known operation whose reply fits and that never changes
        # the state (a get of the current value, a failed cas, a delete of an
        # absent key) is taken alone: some linearization starts with it if any
        # does. Known operations that change the state go by earliest
        # response: the first to return must come before every call after it.
        # Unknown ones go last (they need never be linearized) and only those
        # that change the state; of unknown calls with the same effect, only the
        # earliest is offered: none can ever block anything, so which one is
        # used makes no difference, and offering each would make the search try
        # every subset of them.
        known_calls: list[tuple[int, bool, int, State]] = []
        unknown_calls: list[tuple[int, State]] = []
        effects_offered: set[tuple[int, State, Value]] = set()
        entry = following[0]
        while entry != tail and not entry_is_return[entry]:
            index = entry_op[entry]
            entry = following[entry]
            if client_before[index] & ~done_known:
                continue
            ok, after = step(index, state)
            if not ok:
                continue
            if known[index]:
                if pure[index]:
                    return [(index, after)]
                known_calls.append(
                    (responses[index], followed[index], index, after)  # type: ignore[arg-type]
                )
            elif not (after is state or after == state) and effect[index] not in effects_offered:
                effects_offered.add(effect[index])
                unknown_calls.append((index, after))
        # Section 8: of twins, the one that returns first stands for those that
        # return later, and for those that return with it unless rule 6 makes
        # another of their client's operations wait for them.
        known_calls.sort()
        chosen: list[tuple[int, bool, int, State]] = []
        first_of_class: dict[tuple, int] = {}
        for call in known_calls:
            response, is_followed, index, after = call
            first = first_of_class.setdefault(twin_class[index], index)
            if first != index and (responses[first] != response or not is_followed):
                continue
            chosen.append(call)
        return [(call[2], call[3]) for call in chosen] + unknown_calls

    def lift(index: int) -> None:
        for entry in (call_entry[index], return_entry[index]):
            if entry >= 0:
                following[preceding[entry]] = following[entry]
                preceding[following[entry]] = preceding[entry]

    def unlift(index: int) -> None:
        # Dancing links: undo in the reverse order of lift, so each entry's
        # neighbours are the ones it had when it was taken out.
        for entry in (return_entry[index], call_entry[index]):
            if entry >= 0:
                following[preceding[entry]] = entry
                preceding[following[entry]] = entry

    def stranded(index: int, before: State, after: State, done: int) -> bool:
        # Section 5, with ``index`` just linearized (in ``done``): only the value
        # the key held and the value ``index`` might have written can have just
        # become lost, as the rule held before.
        for value in (before, writes[index]):
            if value is _NOTHING or value is after or value == after:
                continue
            if lost(value, done):  # type: ignore[arg-type]
                return True
        return False

    state: State = None  # the key starts absent
    # The linearized set, split in two bitsets by outcome: see ``dominated``.
    done_known = 0
    done_unknown = 0
    # (known bitset, state) -> the unknown bitsets seen with it. Every entry is
    # a configuration that is on the stack or was explored without success.
    seen: dict[tuple[int, State], list[int]] = {}

    def dominated(known_bits: int, after: State, unknown_bits: int) -> bool:
        # Lowe's memoization, made stronger for unknown outcomes: a configuration
        # with the same known operations and the same state but fewer unknown
        # ones linearized can do everything this one can (an unknown operation
        # may always be left out, and it has no return event that could block
        # anyone), so if that one is seen this one needs no search. Without
        # this, each timed-out put that a later put hides doubles the work:
        # the search would redo every stretch with and without it.
        earlier = seen.get((known_bits, after))
        if earlier is None:
            seen[(known_bits, after)] = [unknown_bits]
            return False
        for other in earlier:  # bounded by the configurations already seen
            if other & ~unknown_bits == 0:
                return True
        earlier.append(unknown_bits)
        return False

    # Each frame: the candidates at that depth, the next one to try, the state
    # before, and the operation linearized. Depth is at most ``count``.
    stack: list[tuple[list[tuple[int, State]], int, State, int]] = []
    choices = candidates(state, done_known)
    position = 0
    deepest_known = -1
    deepest_bits, deepest_state = 0, None
    dominated(0, None, 0)
    steps = 0
    # Bounded by the deadline; without it, by the finite number of
    # configurations, as each push records a new one in ``seen``.
    while True:
        steps += 1
        if steps % _CLOCK_CHECK_STEPS == 0 and time.monotonic() > deadline:
            return _KeyOutcome(None, searched, deepest_bits, deepest_state)
        if known_remaining == 0:
            return _KeyOutcome(True, searched, done_known | done_unknown, state)
        advanced = False
        while position < len(choices):
            index, after = choices[position]
            position += 1
            is_known = known[index]
            if is_known:
                known_bits, unknown_bits = done_known | (1 << index), done_unknown
            else:
                known_bits, unknown_bits = done_known, done_unknown | (1 << index)
            if stranded(index, state, after, known_bits | unknown_bits):
                continue
            if dominated(known_bits, after, unknown_bits):
                continue
            stack.append((choices, position, state, index))
            lift(index)
            done_known, done_unknown, state = known_bits, unknown_bits, after
            if is_known:
                known_remaining -= 1
            choices, position = candidates(state, done_known), 0
            advanced = True
            break
        if advanced:
            if known_total - known_remaining > deepest_known:
                deepest_known = known_total - known_remaining
                deepest_bits, deepest_state = done_known | done_unknown, state
            continue
        if not stack:
            return _KeyOutcome(False, searched, deepest_bits, deepest_state)
        choices, position, state, index = stack.pop()
        unlift(index)
        if known[index]:
            done_known &= ~(1 << index)
            known_remaining += 1
        else:
            done_unknown &= ~(1 << index)


def _still_fails(candidate: list[Operation], deadline: float) -> bool:
    return _search_key(candidate, deadline).verdict is False


def _without_reply(operation: Operation) -> Operation:
    return Operation(
        operation.client_id,
        operation.op,
        operation.key,
        operation.value,
        operation.expected,
        operation.invoke,
        None,
        None,
    )


def _shrink(
    key_ops: list[Operation], deadline: float
) -> tuple[list[Operation], list[Operation], bool]:
    """The operations whose replies conflict, and whether that set is 1-minimal.

    Shrinking forgets replies rather than dropping operations: an operation
    whose reply is forgotten still may have taken effect, so forgetting only
    ever makes a history easier to linearize, and whatever still fails is a
    conflict among the replies that remain. (Dropping a put instead would make
    its readers fail on their own, and the "explanation" would be a read of a
    value nobody wrote.) Chunks, then single replies, are forgotten as in
    delta debugging (Zeller & Hildebrandt 2002). 1-minimal: forgetting any one
    remaining reply makes the history linearizable.

    On a key with many operations and a conflict far from its start, the
    replies before the conflict stay unless the time limit allows forgetting
    them, and the result says it is not minimal.

    Returned: the operations whose replies remain; the writes whose reply was
    forgotten but that were invoked before the last of those replies (they may
    have taken part); whether the first list is 1-minimal.
    """
    ordered = sorted(key_ops, key=lambda o: (o.invoke, o.client_id))
    kept = {i for i, o in enumerate(ordered) if o.response is not None}

    def fails_with(replies: set[int]) -> bool:
        trial = [o if i in replies else _without_reply(o) for i, o in enumerate(ordered)]
        return _still_fails(trial, deadline)

    # First forget every reply invoked after some time, by bisection: the more
    # replies forgotten the easier the history, so whether it still fails is
    # monotone in that time, and a failure early in a long history loses its
    # long tail in log2(len) checks.
    answered = sorted(kept)
    low, high = 0, len(answered)  # keeping the first ``high`` replies fails
    while low < high:  # at most log2(len) rounds
        if time.monotonic() > deadline:
            break
        middle = (low + high) // 2
        if fails_with(set(answered[:middle])):
            high = middle
        else:
            low = middle + 1
    kept = set(answered[:high])

    minimal = False
    chunk = max(1, len(kept) // 2)
    # Chunk sizes halve down to 1 (log2(len) passes); then single-reply passes
    # repeat until one forgets nothing, at most len passes.
    for _ in range(len(kept) + 64):
        current = sorted(kept)
        forgot_any = False
        timed_out = False
        for start in range(0, len(current), chunk):
            if time.monotonic() > deadline:
                timed_out = True
                break
            forget = set(current[start : start + chunk])
            if fails_with(kept - forget):
                kept -= forget
                forgot_any = True
        if timed_out:
            break
        if chunk > 1:
            chunk //= 2
        elif not forgot_any:
            minimal = True
            break
    replies = [ordered[i] for i in sorted(kept)]
    horizon = max((o.response for o in replies), default=0)  # type: ignore[type-var]
    context = [
        o
        for i, o in enumerate(ordered)
        if i not in kept and o.op != "get" and o.invoke <= horizon
    ]
    return replies, context, minimal


def describe(operation: Operation) -> str:
    """One readable line for ``operation``, e.g. ``client 3  put b'x' -> None  [10, 20]``."""
    if operation.op == "get":
        call = "get"
    elif operation.op == "put":
        call = f"put {operation.value!r}"
    elif operation.op == "delete":
        call = "delete"
    else:
        call = f"cas {operation.expected!r} => {operation.value!r}"
    if operation.response is None:
        reply, when = "?  (no reply)", f"[{operation.invoke}, never]"
    else:
        reply, when = repr(operation.result), f"[{operation.invoke}, {operation.response}]"
    return f"client {operation.client_id:<3} {call} -> {reply}  {when}"


def _explain(
    key: str,
    key_ops: list[Operation],
    outcome: _KeyOutcome,
    replies: list[Operation],
    context: list[Operation],
    minimal: bool,
) -> str:
    lines = [f"key {key!r} is not linearizable ({len(key_ops)} operations on it)."]
    these = "this operation" if len(replies) == 1 else f"these {len(replies)} operations"
    if minimal:
        lines.append(
            f"The replies of {these} cannot all be true; "
            "forgetting any one of them makes the history linearizable:"
        )
    else:
        lines.append(
            f"The replies of {these} cannot all be true "
            "(shrinking stopped at its time limit, a smaller set may exist):"
        )
    lines.extend("  " + describe(o) for o in replies)
    if context:
        lines.append(
            "given that these writes, whatever their replies, may each have taken "
            "effect once at any time after their invocation, or never:"
        )
        lines.extend("  " + describe(o) for o in context)

    if outcome.unwritten is not None:
        lines.append(
            f"No operation invoked before this reply's response can write "
            f"{_needed(outcome.unwritten)!r}, which the reply needs:"
        )
        lines.append("  " + describe(outcome.unwritten))
        return "\n".join(lines)

    # Where the full search got furthest: which operations it could not place.
    known_total = sum(o.response is not None for o in outcome.searched)
    bits = outcome.deepest_bits
    pending = [o for index, o in enumerate(outcome.searched) if not (bits >> index) & 1]
    pending_known = [o for o in pending if o.response is not None]
    horizon = min(o.response for o in pending_known)  # type: ignore[type-var]
    stuck = [o for o in pending if o.invoke <= horizon]
    lines.append(
        f"The search linearized at most {known_total - len(pending_known)} of the "
        f"{known_total} operations with a known reply; there the value was "
        f"{outcome.deepest_state!r}, and no way of going on with these led to a "
        "linearization:"
    )
    lines.extend("  " + describe(o) for o in sorted(stuck, key=lambda o: o.invoke))
    return "\n".join(lines)


def _needed(operation: Operation) -> Value:
    """The value a get's or a successful cas's reply needs the key to hold."""
    return operation.result if operation.op == "get" else operation.expected  # type: ignore[return-value]

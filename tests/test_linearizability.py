"""Tests of the linearizability checker (lowpaxos.check.linearizability).

Hand-written histories give the verdict a reader can confirm on paper; the
Hypothesis tests build concurrent histories from a run of the real KVS, which
are linearizable by construction, and corrupt them.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lowpaxos.check import CheckResult, Operation, StrictClock, check_history
from lowpaxos.core.api import Command
from lowpaxos.kvs import KeyValueStore


def op(
    client_id: int,
    kind: str,
    invoke: int,
    response: int | None,
    result: bytes | bool | None = None,
    *,
    key: str = "k",
    value: bytes | None = None,
    expected: bytes | None = None,
) -> Operation:
    return Operation(client_id, kind, key, value, expected, invoke, response, result)


def put(client_id: int, value: bytes, invoke: int, response: int | None, **kw) -> Operation:
    return op(client_id, "put", invoke, response, None, value=value, **kw)


def get(client_id: int, result: bytes | None, invoke: int, response: int | None, **kw) -> Operation:
    return op(client_id, "get", invoke, response, result, **kw)


def check(*ops: Operation) -> CheckResult:
    return check_history(list(ops), time_limit_s=10.0)


# ---- linearizable histories ----


def test_empty_history_is_linearizable():
    """A history with no operations is trivially linearizable and checks no key."""
    result = check()
    assert result.linearizable is True
    assert (result.keys_checked, result.ops_checked) == (0, 0)


def test_sequential_history_of_every_operation():
    """Each operation kind, one after another, gives exactly the sequential KVS answers."""
    result = check(
        get(1, None, 0, 1),
        put(1, b"a", 2, 3),
        get(2, b"a", 4, 5),
        op(1, "cas", 6, 7, True, expected=b"a", value=b"b"),
        op(2, "cas", 8, 9, False, expected=b"a", value=b"c"),
        op(1, "delete", 10, 11, True),
        op(2, "delete", 12, 13, False),
        op(1, "cas", 14, 15, True, expected=None, value=b"d"),
        op(2, "cas", 16, 17, True, expected=b"d", value=None),
        get(1, None, 18, 19),
    )
    assert result.linearizable is True, result.explanation
    assert (result.keys_checked, result.ops_checked) == (1, 10)


def test_concurrent_writes_may_be_read_in_either_order():
    """A read overlapping two writes may see either one: both orders are linearizations."""
    for seen in (b"a", b"b"):
        result = check(put(1, b"a", 0, 10), put(2, b"b", 0, 10), get(3, seen, 11, 12))
        assert result.linearizable is True, result.explanation


def test_read_overlapping_a_write_may_see_old_or_new_value():
    """A get concurrent with a put may return the value before or after it."""
    for seen in (None, b"a"):
        assert check(put(1, b"a", 0, 10), get(2, seen, 5, 6)).linearizable is True


def test_equal_timestamps_count_as_overlapping():
    """A response and an invocation in the same tick are not ordered, so either order is allowed."""
    result = check(put(1, b"a", 0, 5), get(2, None, 5, 6))
    assert result.linearizable is True, result.explanation
    result = check(put(1, b"a", 0, 5), get(2, None, 6, 7))
    assert result.linearizable is False


def test_read_your_own_write_with_a_tied_stamp_is_rejected():
    """Issue 12's history: one client puts old, puts new, and its next get, invoked at
    the very stamp the second put returned, reads old. A client runs one operation at
    a time, so the get follows the put and the history fails; the same stamps spread
    over three clients overlap and pass; stamped as the simulator now stamps (the call
    after the reply), it fails with three clients too."""
    same_client = [put(1, b"old", 0, 10), put(1, b"new", 20, 100), get(1, b"old", 100, 150)]
    result = check(*same_client)
    assert result.linearizable is False
    assert "get -> b'old'" in result.explanation
    three_clients = [put(1, b"old", 0, 10), put(2, b"new", 20, 100), get(3, b"old", 100, 150)]
    assert check(*three_clients).linearizable is True
    stamped = [put(1, b"old", 0, 10_000), put(2, b"new", 20_000, 100_000),
               get(3, b"old", 100_001, 150_000)]
    assert check(*stamped).linearizable is False


def test_an_unanswered_operation_does_not_order_its_clients_next_one():
    """A client that gave up on a put moves on; that put may still take effect after the
    client's next call, so a read of the older value by that call is fine."""
    result = check(put(1, b"old", 0, 10), put(1, b"new", 20, None), get(1, b"old", 20, 30))
    assert result.linearizable is True, result.explanation


def test_strict_clock_never_repeats_a_stamp():
    """StrictClock keeps a reading that moved forward and raises one that did not."""
    clock = StrictClock()
    assert [clock.stamp(now) for now in (5, 5, 5, 9, 7, 20)] == [5, 6, 7, 9, 10, 20]


def test_deep_single_key_history_needs_no_recursion():
    """Five thousand sequential operations on one key check fine: the search is iterative."""
    ops = []
    for step in range(2500):
        value = f"v{step}".encode()
        ops.append(put(1, value, 4 * step, 4 * step + 1))
        ops.append(get(2, value, 4 * step + 2, 4 * step + 3))
    result = check_history(ops, time_limit_s=30.0)
    assert result.linearizable is True
    assert result.ops_checked == 5000


# ---- non-linearizable histories ----


def test_stale_read_after_completed_write():
    """A get that starts after a put finished must not return the value before the put."""
    result = check(put(1, b"a", 0, 1), get(2, None, 2, 3))
    assert result.linearizable is False
    assert result.key == "k"
    assert "key 'k'" in result.explanation


def test_two_concurrent_writes_read_in_opposite_orders():
    """Two clients that see two concurrent writes in opposite orders cannot both be right."""
    result = check(
        put(1, b"a", 0, 100),
        put(2, b"b", 0, 100),
        get(3, b"a", 10, 20),
        get(3, b"b", 30, 40),
        get(4, b"b", 10, 20),
        get(4, b"a", 30, 40),
    )
    assert result.linearizable is False
    # All four replies conflict (forget one and an order fits), given the two writes.
    assert len(result.ops_involved) == 6
    assert "these 4 operations cannot all be true" in result.explanation


def test_cas_succeeding_twice_on_the_same_expected_value():
    """Two cas from the same expected value cannot both succeed; one success is fine."""
    setup = put(1, b"a", 0, 1)
    first = op(2, "cas", 2, 10, True, expected=b"a", value=b"b")
    second_ok = op(3, "cas", 2, 10, True, expected=b"a", value=b"c")
    second_failed = op(3, "cas", 2, 10, False, expected=b"a", value=b"c")
    assert check(setup, first, second_ok).linearizable is False
    assert check(setup, first, second_failed).linearizable is True


def test_delete_reporting_an_absent_key_as_present():
    """delete answers True only when the key existed, so True on a never-written key is wrong."""
    assert check(op(1, "delete", 0, 1, True)).linearizable is False
    assert check(put(1, b"a", 0, 1), op(1, "delete", 2, 3, True)).linearizable is True


def test_lost_write():
    """A get after an acknowledged put must not return the value that put overwrote."""
    result = check(put(1, b"old", 0, 1), put(1, b"new", 2, 3), get(2, b"old", 4, 5))
    assert result.linearizable is False
    assert result.linearizable is not None


def test_explanation_shrinks_to_the_operations_involved():
    """Around a stale read, unrelated operations are dropped from the explanation."""
    noise = [get(5, None, 0, 1), put(6, b"x", 100, 101), get(6, b"x", 102, 103)]
    culprit = [put(1, b"a", 10, 11), get(2, None, 12, 13)]
    result = check(*noise, *culprit)
    assert result.linearizable is False
    assert sorted(result.ops_involved, key=lambda o: o.invoke) == culprit
    assert "forgetting any one of them" in result.explanation
    assert "put b'a'" in result.explanation


# ---- unknown outcomes ----


def test_timed_out_put_that_a_later_read_sees():
    """A put with no reply may have taken effect, which explains a later read of its value."""
    result = check(put(1, b"a", 0, None), get(2, b"a", 5, 6))
    assert result.linearizable is True, result.explanation


def test_timed_out_put_that_never_takes_effect():
    """A put with no reply may also never take effect, so reads of the older value stay fine."""
    result = check(
        put(1, b"a", 0, 1), put(2, b"b", 2, None), get(3, b"a", 10, 11), get(3, b"a", 20, 21)
    )
    assert result.linearizable is True, result.explanation


def test_timed_out_put_takes_effect_only_after_its_invocation():
    """A put with no reply cannot explain a read that finished before the put was sent."""
    result = check(get(2, b"a", 0, 1), put(1, b"a", 5, None))
    assert result.linearizable is False


def test_read_of_a_value_nobody_wrote_despite_timeouts():
    """Unknown outcomes do not excuse a read of a value that no operation ever wrote."""
    result = check(
        put(1, b"a", 0, None),
        op(2, "cas", 1, None, None, expected=None, value=b"b"),
        op(3, "delete", 2, None),
        get(4, b"z", 10, 11),
    )
    assert result.linearizable is False


def test_timed_out_cas_and_delete():
    """A cas or delete with no reply may explain a later state, and its result is ignored."""
    assert check(
        put(1, b"a", 0, 1), op(2, "delete", 2, None, True), get(3, None, 10, 11)
    ).linearizable is True
    assert check(
        put(1, b"a", 0, 1),
        op(2, "cas", 2, None, False, expected=b"a", value=b"b"),
        get(3, b"b", 10, 11),
    ).linearizable is True


def test_timed_out_put_takes_effect_at_most_once():
    """One timed-out put can make the key present once; a second delete True needs a second write."""
    result = check(
        put(1, b"a", 0, None),
        op(2, "delete", 10, 11, True),
        op(2, "delete", 12, 13, True),
    )
    assert result.linearizable is False


def test_history_of_only_unknown_outcomes_is_linearizable():
    """When no reply came back, nothing was observed, so nothing can be contradicted."""
    assert check(get(1, b"z", 0, None), put(2, b"a", 0, None)).linearizable is True


# ---- partitioning by key ----


def test_keys_are_checked_independently():
    """A value written to one key does not explain a read on another key."""
    result = check(put(1, b"a", 0, 1, key="x"), get(2, b"a", 2, 3, key="y"))
    assert result.linearizable is False
    assert result.key == "y"
    assert all(o.key == "y" for o in result.ops_involved)


def test_interleaved_keys_each_linearizable():
    """Interleaved operations on two keys pass when each key's sub-history is linearizable."""
    result = check(
        put(1, b"a", 0, 10, key="x"),
        put(2, b"b", 0, 10, key="y"),
        get(3, b"a", 11, 12, key="x"),
        get(3, b"b", 13, 14, key="y"),
        op(4, "delete", 15, 16, True, key="x"),
        get(4, b"b", 17, 18, key="y"),
    )
    assert result.linearizable is True, result.explanation
    assert (result.keys_checked, result.ops_checked) == (2, 6)


def test_failing_key_is_reported_among_good_ones():
    """With several keys, the verdict names the one that fails and counts the keys checked."""
    result = check(
        put(1, b"a", 0, 1, key="a"),
        get(1, b"a", 2, 3, key="a"),
        put(1, b"a", 0, 1, key="b"),
        get(1, None, 2, 3, key="b"),
        put(1, b"a", 0, 1, key="c"),
    )
    assert result.linearizable is False
    assert result.key == "b"
    assert result.keys_checked == 2


# ---- limits and input errors ----


def test_time_limit_gives_up_with_none():
    """A search too large for its time limit answers None (don't know), not a verdict."""
    # Sixteen concurrent puts, each value read once, and seventeen concurrent
    # deletes that found the key present: each delete needs a put since the last
    # one, so one delete is too many, but proving it takes every order of puts.
    puts = [put(c, f"v{c}".encode(), 0, 1000) for c in range(16)]
    reads = [get(100 + c, f"v{c}".encode(), 0, 1000) for c in range(16)]
    deletes = [op(200 + c, "delete", 0, 1000, True) for c in range(17)]
    result = check_history([*puts, *reads, *deletes], time_limit_s=0.2)
    assert result.linearizable is None
    assert result.key == "k"
    assert result.keys_undecided == ("k",)
    assert "undecided" in result.explanation


def test_undecided_key_does_not_hide_a_violation_on_another_key():
    """After one key runs out of time the others are still checked: a stale read on a
    small key is reported (verdict False) with the undecided key listed; without the
    stale read the verdict is None, never True."""
    hard = [put(c, f"v{c}".encode(), 0, 1000, key="a") for c in range(16)]
    hard += [get(100 + c, f"v{c}".encode(), 0, 1000, key="a") for c in range(16)]
    hard += [op(200 + c, "delete", 0, 1000, True, key="a") for c in range(17)]
    stale = [put(1, b"x", 0, 1, key="b"), get(2, None, 2, 3, key="b")]
    result = check_history([*hard, *stale], time_limit_s=0.2)
    assert result.linearizable is False
    assert result.key == "b"
    assert result.keys_undecided == ("a",)
    fine = [put(1, b"x", 0, 1, key="b"), get(2, b"x", 2, 3, key="b")]
    result = check_history([*hard, *fine], time_limit_s=0.2)
    assert result.linearizable is None
    assert (result.keys_undecided, result.keys_checked) == (("a",), 1)


@pytest.mark.parametrize(
    "bad",
    [
        op(1, "increment", 0, 1),
        put(1, None, 0, 1),  # type: ignore[arg-type]
        get(1, None, 5, 4),
        op(1, "delete", 0, 1, None),
        op(1, "put", 0, 1, True, value=b"a"),
    ],
)
def test_malformed_operation_is_rejected(bad):
    """A history the recorder got wrong raises instead of yielding a verdict."""
    with pytest.raises(ValueError):
        check_history([bad])


# ---- property tests against the real KVS ----

KEYS = ("k0", "k1", "k2")
VALUES = (b"a", b"b", b"c")  # few values, so cas and reads often match


@st.composite
def linearizable_histories(draw) -> list[Operation]:
    """A concurrent history linearizable by construction.

    Operations run one at a time on the real KeyValueStore at points 10, 20,
    30, ...; each then gets an interval around its point, so the run order is a
    linearization. Some replies are lost (response None), and some lost
    operations never run at all.
    """
    store = KeyValueStore()
    count = draw(st.integers(min_value=1, max_value=40))
    history = []
    for request_id in range(count):
        kind = draw(st.sampled_from(("get", "put", "delete", "cas")))
        key = draw(st.sampled_from(KEYS))
        value = draw(st.sampled_from(VALUES)) if kind == "put" else None
        expected = None
        if kind == "cas":
            expected = draw(st.sampled_from((None, *VALUES)))
            value = draw(st.sampled_from((None, *VALUES)))
        point = 10 * (request_id + 1)
        invoke = point - draw(st.integers(min_value=0, max_value=25))
        fate = draw(st.sampled_from(("answered",) * 8 + ("lost reply", "never ran")))
        client_id = request_id  # one client per operation: intervals may overlap freely
        if fate == "never ran":
            history.append(Operation(client_id, kind, key, value, expected, invoke, None, None))
            continue
        command = Command(client_id, request_id, kind, key, value, expected)
        result = store.execute(command)
        response = None if fate == "lost reply" else point + draw(st.integers(0, 25))
        history.append(Operation(client_id, kind, key, value, expected, invoke, response, result))
    return history


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories())
def test_histories_from_the_real_kvs_are_linearizable(history):
    """Every history built from a run of the real KVS passes, with every key checked."""
    result = check_history(history, time_limit_s=10.0)
    assert result.linearizable is True, result.explanation
    assert result.keys_checked == len({o.key for o in history})
    assert result.ops_checked == len(history)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(linearizable_histories(), st.data())
def test_a_read_of_a_never_written_value_fails(history, data):
    """Changing one answered get to a value no one wrote makes the history fail on that key."""
    reads = [i for i, o in enumerate(history) if o.op == "get" and o.response is not None]
    assume(reads)
    victim_index = data.draw(st.sampled_from(reads))
    victim = history[victim_index]
    corrupted = list(history)
    corrupted[victim_index] = Operation(
        victim.client_id, "get", victim.key, None, None, victim.invoke, victim.response, b"never"
    )
    result = check_history(corrupted, time_limit_s=10.0)
    assert result.linearizable is False
    assert result.key == victim.key
    assert corrupted[victim_index] in result.ops_involved


# ---- the search against brute force ----


def brute_force_linearizable(history: list[Operation]) -> bool:
    """Try every order of the known operations, with every unknown one placed anywhere
    or left out; a reference for small single-key histories, written independently of
    the checker (no pruning, no memo; a client runs one operation at a time)."""

    def must_precede(first: Operation, second: Operation) -> bool:
        if first.response is None:
            return False
        if first.response < second.invoke:
            return True
        return first.client_id == second.client_id and first.response == second.invoke

    def execute(operation: Operation, state):
        if operation.op == "get":
            return state, state
        if operation.op == "put":
            return None, operation.value
        if operation.op == "delete":
            return state is not None, None
        swapped = state == operation.expected
        return swapped, (operation.value if swapped else state)

    def extend(placed: frozenset, state) -> bool:
        if all(i in placed for i, o in enumerate(history) if o.response is not None):
            return True
        for i, candidate in enumerate(history):
            if i in placed:
                continue
            if any(j not in placed and j != i and must_precede(other, candidate)
                   for j, other in enumerate(history)):
                continue
            result, after = execute(candidate, state)
            if candidate.response is not None and result != candidate.result:
                continue
            if extend(placed | {i}, after):
                return True
        return False

    return extend(frozenset(), None)


@st.composite
def small_client_histories(draw) -> list[Operation]:
    """Up to 7 operations on one key from up to 3 sequential clients, on a coarse clock
    (many equal stamps), with arbitrary replies and some unknown outcomes."""
    history = []
    for client_id in range(1, draw(st.integers(1, 3)) + 1):
        now = draw(st.integers(0, 4))
        for _ in range(draw(st.integers(1, 3))):
            kind = draw(st.sampled_from(("get", "put", "delete", "cas")))
            value = expected = result = None
            if kind in ("put", "cas"):
                value = draw(st.sampled_from((b"a", b"b") if kind == "put" else (None, b"a", b"b")))
            if kind == "cas":
                expected = draw(st.sampled_from((None, b"a", b"b")))
            if kind == "get":
                result = draw(st.sampled_from((None, b"a", b"b")))
            elif kind in ("delete", "cas"):
                result = draw(st.booleans())
            invoke = now
            if draw(st.integers(0, 4)) == 0:
                history.append(Operation(client_id, kind, "k", value, expected, invoke, None, None))
                now = invoke + draw(st.integers(0, 3))
                continue
            response = invoke + draw(st.integers(0, 4))
            history.append(Operation(client_id, kind, "k", value, expected, invoke, response, result))
            now = response + draw(st.integers(0, 2))
    return history


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(small_client_histories())
def test_search_agrees_with_brute_force(history):
    """Every pruning rule of the search (lost values, one operation at a time per client,
    operations that change nothing taken at once, twins, memo) keeps the verdict of trying
    every order: checked on small random histories with equal stamps and unknown outcomes."""
    expected = brute_force_linearizable(history)
    result = check_history(history, time_limit_s=10.0)
    assert result.linearizable is expected, (history, result.explanation)

"""Hypothesis strategies for well-formed lowpaxos values, shared by every test module.

Each strategy generates only values the codec accepts (non-negative slots, replica
ids in range, a put always carries a value), so a round-trip failure is a codec bug.
"""

from __future__ import annotations

from hypothesis import strategies as st

from lowpaxos import codec
from lowpaxos.core.api import OPS, ClientReply, ClientRequest, Command, ReplyStatus
from lowpaxos.protocols.lowpaxos import messages as lp

slots = st.integers(min_value=0, max_value=codec.INT64_MAX)
small_slots = st.integers(min_value=0, max_value=1000)
replica_ids = st.integers(min_value=0, max_value=codec.REPLICA_ID_MAX)
session_ids = st.integers(min_value=0, max_value=codec.UINT64_MAX)
keys = st.text(max_size=16)
values = st.binary(max_size=32)
optional_values = st.none() | values

ballots = st.builds(
    lp.Ballot,
    round=st.integers(min_value=0, max_value=codec.INT64_MAX),
    replica=st.integers(min_value=-1, max_value=codec.REPLICA_ID_MAX),
)


@st.composite
def commands(draw) -> Command:
    op = draw(st.sampled_from(OPS))
    value = draw(values) if op in ("put", "append") else draw(optional_values)
    pairs = keys_of = ()
    if op == "mset":
        pairs = tuple(draw(st.lists(st.tuples(keys, values), min_size=1, max_size=3)))
    if op == "mget":
        keys_of = tuple(draw(st.lists(keys, min_size=1, max_size=3)))
    if op == "scan":
        keys_of = tuple(draw(st.lists(keys, max_size=1)))
    return Command(
        client_id=draw(session_ids),
        request_id=draw(session_ids),
        op=op,
        key=draw(keys),
        value=value,
        expected=draw(optional_values),
        pairs=pairs,
        keys=keys_of,
        count=draw(st.integers(0, 1000)) if op == "scan" else 0,
    )


batches = st.lists(commands(), max_size=4).map(tuple)
entries = st.builds(lp.Entry, slot=slots, ballot=ballots, batch=batches)
entry_tuples = st.lists(entries, max_size=4).map(tuple)

row_kinds = st.integers(0, 1)
splits = st.none() | st.tuples(row_kinds, keys)
cursors = st.none() | st.tuples(st.integers(0, 1), row_kinds, st.none() | keys)
rows = st.tuples(row_kinds, keys, optional_values, st.integers(-1, 1000))

lowpaxos_messages = st.one_of(
    st.builds(lp.Prepare, ballot=ballots, commit_index=slots),
    st.builds(lp.Promise, ballot=ballots, entries=entry_tuples, commit_index=slots),
    st.builds(
        lp.Accept,
        ballot=ballots,
        slot=slots,
        batch=batches,
        commit_index=slots,
        truncate_index=slots,
    ),
    st.builds(lp.Accepted, ballot=ballots, slot=slots, commit_index=slots),
    st.builds(lp.Reject, ballot=ballots, commit_index=slots, lagging=st.booleans()),
    st.builds(lp.Heartbeat, ballot=ballots, commit_index=slots, truncate_index=slots),
    st.builds(lp.HeartbeatReply, ballot=ballots, commit_index=slots),
    st.builds(lp.CatchupRequest, ballot=ballots, from_slot=slots),
    st.builds(lp.CatchupReply, ballot=ballots, entries=entry_tuples, commit_index=slots),
    st.builds(lp.SnapshotRequest, ballot=ballots, image_index=small_slots, base=small_slots,
              split=splits, cursor=cursors, credits=st.integers(1, 1024)),
    st.builds(lp.SnapshotChunk, ballot=ballots, image_index=small_slots,
              digest=st.integers(0, (1 << 128) - 1), base=small_slots, split=splits,
              cursor=cursors, next_cursor=cursors, rows=st.lists(rows, max_size=4).map(tuple)),
)

client_requests = st.builds(ClientRequest, command=commands())
client_replies = st.builds(
    ClientReply,
    client_id=session_ids,
    request_id=session_ids,
    status=st.sampled_from(list(ReplyStatus)),
    result=st.none() | st.booleans() | values | st.integers(-5, 5)
    | st.lists(st.none() | values, max_size=3),
    leader_hint=st.none() | replica_ids,
)

client_messages = client_requests | client_replies

# Every message the codec knows today; protocols registered later add their own.
messages = lowpaxos_messages | client_messages

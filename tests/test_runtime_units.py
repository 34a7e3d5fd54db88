"""Unit tests of the runtime's pieces that need no process: RESP bounds, datagram
authentication, the cluster file (storage: tests/test_storage.py)."""

from __future__ import annotations

import pytest

from lowpaxos.runtime import resp
from lowpaxos.runtime.cluster import ClusterFileError, load_cluster, load_key, write_cluster_file
from lowpaxos.runtime.framing import MESSAGE, FrameError, open_frame, peek_sender, seal

KEY = bytes(range(32))


def parser(arguments_max=8, bulk_bytes_max=100, line_bytes_max=64):
    return resp.RespParser(arguments_max, bulk_bytes_max, line_bytes_max)


# ---------------------------------------------------------------- RESP


def test_resp_parses_multibulk_fed_one_byte_at_a_time():
    """A pipelined pair of commands arrives byte by byte and parses only when complete."""
    p = parser()
    data = resp.encode_command(["SET", "k", b"v\r\nx"]) + resp.encode_command(["GET", "k"])
    commands = []
    for byte in data:
        p.feed(bytes([byte]))
        while (command := p.next_command()) is not None:
            commands.append(command)
    assert commands == [[b"SET", b"k", b"v\r\nx"], [b"GET", b"k"]]


def test_resp_parses_inline_commands():
    """Inline commands (telnet style) split on whitespace."""
    p = parser()
    p.feed(b"PING\r\nSET a  b\n")
    assert p.next_command() == [b"PING"]
    assert p.next_command() == [b"SET", b"a", b"b"]
    assert p.next_command() is None


@pytest.mark.parametrize("data, message", [
    (b"*9\r\n", "9 arguments"),
    (b"*1\r\n$101\r\n", "bulk of 101 bytes"),
    (b"*1\r\n$-5\r\n", "invalid bulk length"),
    (b"*x\r\n", "invalid multibulk length"),
    (b"*1\r\n+PING\r\n", "expected '[$]'"),
    (b"*1\r\n$2\r\nabcd\r\n", "not followed by CRLF"),
    (b"*1\r\n$1" + b"1" * 70, "too big line"),
    (b"P" * 70, "too big inline"),
])
def test_resp_refuses_input_beyond_bounds(data, message):
    """Each bound and each malformed header raises a protocol error naming the problem."""
    p = parser()
    p.feed(data)
    with pytest.raises(resp.RespProtocolError, match=message):
        p.next_command()


def test_resp_reply_parser_reads_every_kind():
    """The client's reply parser reads what the server's encoder writes."""
    p = resp.ReplyParser()
    p.feed(resp.OK + resp.error("ERR x") + resp.integer(7) + resp.bulk(b"v") + resp.NIL
           + resp.array([b"a", None]))
    replies = [p.next_reply() for _ in range(6)]
    assert replies == [("+", "OK"), ("-", "ERR x"), (":", 7), ("$", b"v"), ("$", None),
                       ("*", [b"a", None])]
    assert p.next_reply() is None


# ---------------------------------------------------------------- framing


def test_frame_round_trip_and_sender_peek():
    """A sealed datagram opens to its kind, sender, counter and payload."""
    datagram = seal(KEY, 2, 99, b"payload")
    assert peek_sender(datagram) == 2
    assert open_frame(KEY, datagram, 3, 65507) == (MESSAGE, 2, 99, b"payload")


@pytest.mark.parametrize("mutate, reason", [
    (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "bad_tag"),
    (lambda d: d[:20] + b"X" + d[21:], "bad_tag"),
    (lambda d: b"XX" + d[2:], "bad_header"),
    (lambda d: d[:10], "truncated"),
    (lambda d: d + b"\0" * 70000, "oversized"),
])
def test_frame_drops_tampered_datagrams_with_a_reason(mutate, reason):
    """Any change to a sealed datagram is detected and named."""
    with pytest.raises(FrameError) as caught:
        open_frame(KEY, mutate(seal(KEY, 1, 5, b"payload" * 3)), 3, 65507)
    assert caught.value.reason == reason


def test_frame_drops_wrong_key_and_unknown_sender():
    """A datagram under another key fails authentication; an authentic one from id 7
    in a 3-replica cluster is from an unknown replica."""
    with pytest.raises(FrameError, match="bad_tag"):
        open_frame(KEY, seal(b"k" * 32, 1, 5, b"p"), 3, 65507)
    with pytest.raises(FrameError, match="unknown_sender"):
        open_frame(KEY, seal(KEY, 7, 5, b"p"), 3, 65507)


# ---------------------------------------------------------------- storage


def test_cluster_file_round_trip_and_key(tmp_path, monkeypatch):
    """A written cluster file loads back with its replicas, limits and protocol settings;
    the key comes from the environment when set, else from the key file."""
    path = tmp_path / "cluster.toml"
    write_cluster_file(path, [7000, 7001, 7002], [6380, 6381, 6382], tick_ms=5,
                       bind_ports=[7100, 7101, 7102], limits={"value_bytes_max": 64},
                       protocol={"window_slots": 4, "thrifty": False})
    (tmp_path / "cluster.key").write_text("ab" * 32)
    spec = load_cluster(path)
    assert [r.address for r in spec.replicas] == [("127.0.0.1", p) for p in (7000, 7001, 7002)]
    assert spec.replica(1).bind == ("127.0.0.1", 7101)
    assert spec.limits.value_bytes_max == 64
    assert spec.protocol.window_slots == 4 and spec.protocol.thrifty is False
    assert spec.protocol.replicas == 3
    assert load_key(spec, {}) == bytes([0xAB]) * 32
    assert load_key(spec, {"LOWPAXOS_CLUSTER_KEY": "cd" * 16}) == bytes([0xCD]) * 16
    with pytest.raises(ClusterFileError, match="at least 16"):
        load_key(spec, {"LOWPAXOS_CLUSTER_KEY": "cd" * 4})


def test_cluster_file_names_the_protocol(tmp_path):
    """The protocol comes from the registry by name, as a string or a table's ``name``,
    with that protocol's config (LowPaxos when the file says nothing)."""
    path = tmp_path / "cluster.toml"
    write_cluster_file(path, [7000, 7001, 7002], [6380, 6381, 6382], protocol_name="vr",
                       protocol={"disk": "none", "window_slots": 4})
    spec = load_cluster(path)
    assert spec.protocol_name == "vr" and type(spec.protocol).__name__ == "VRConfig"
    assert spec.protocol.disk == "none" and spec.protocol.window_slots == 4
    assert spec.protocol.replicas == 3
    replicas = "[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n"
    path.write_text("protocol = 'vr'\n" + replicas)
    spec = load_cluster(path)
    assert spec.protocol_name == "vr" and spec.protocol.disk == "sync"
    path.write_text(replicas)
    spec = load_cluster(path)
    assert spec.protocol_name == "lowpaxos" and type(spec.protocol).__name__ == "LowPaxosConfig"


@pytest.mark.parametrize("text, message", [
    ("tick_ms = 10\n", "needs at least one"),
    ("[[replica]]\nid = 1\naddress='127.0.0.1:1'\nresp='127.0.0.1:2'\n", "ids must be 0..0"),
    ("[[replica]]\nid = 0\naddress='nope'\nresp='127.0.0.1:2'\n", "host:port"),
    ("[protocol]\nq1 = 1\nq2 = 1\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n"
     "[[replica]]\nid = 1\naddress='h:3'\nresp='h:4'\n", "must exceed N"),
    ("[limits]\nbogus = 1\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n", "unknown setting"),
    ("[limits]\nfragment_payload_bytes = 1500\ndatagram_bytes_max = 1500\n"
     "[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n", "must fit datagram_bytes_max"),
    ("this is = = not toml", "not valid TOML"),
    # The protocol: a registry name, and only that protocol's config fields.
    ("protocol = 'raft'\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     "unknown protocol 'raft'; known: lowpaxos, vr, epaxos"),
    ("[protocol]\nname = 'vr'\nthrifty = true\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     r"\[protocol\] \(vr\): unknown setting 'thrifty'"),
    ("[protocol]\ndisk = 'none'\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     r"\(lowpaxos\): unknown setting 'disk'"),
    ("[protocol]\nname = 'vr'\ndisk = 'tape'\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     "disk must be one of sync, none"),
    ("[protocol]\nreplicas = 5\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     "replicas is set by the"),
    ("protocol = 3\n[[replica]]\nid = 0\naddress='h:1'\nresp='h:2'\n",
     "a protocol name or a table"),
])
def test_cluster_file_errors_name_the_problem(tmp_path, text, message):
    """A cluster file that cannot run safely is refused with a message that says why."""
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    with pytest.raises(ClusterFileError, match=message):
        load_cluster(path)

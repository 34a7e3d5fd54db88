"""Chunked state transfer, the parts every protocol core shares.

A replica behind another's log cut pulls a point-in-time image of the other's
KVS rows (kvs.StateImage) in chunks, each about one datagram (kvs.read_chunk),
a window of chunks per request; it stages the rows in a second RowStore,
checks the staged digest against the image's and installs atomically. The
message types and where a transfer starts are each protocol's own (LowPaxos:
SnapshotRequest/SnapshotChunk under a ballot, core.py "State transfer"; VR
Revisited: the same under a view, vr/core.py); what is here decides nothing
about the protocol:

* ``cursor_order`` and ``resume_point``: the order of stream positions and what
  a receiver holds part-way through a stream;
* ``stage_chunk``: how one chunk changes the staged rows;
* ``ImageCache``: the serving side's open images, bounded in number and closed
  when idle.
"""

from __future__ import annotations

from lowpaxos.kvs import RowStore, StateImage, write_row


def cursor_order(cursor: tuple | None) -> tuple:
    """A sort key for stream cursors: None (the start) first, a key of None before keys."""
    if cursor is None:
        return (-1,)
    phase, kind, key = cursor
    return (phase, kind, 0, "") if key is None else (phase, kind, 1, key)


def resume_point(image_index: int, base: int, split: tuple | None,
                 cursor: tuple | None) -> tuple[int, tuple | None]:
    """What a receiver holds part-way through the stream ``(image_index, base, split)`` at
    ``cursor``, as (base, split): the rows below ``split`` as of slot ``base``."""
    if cursor is None or cursor[0] == 0:
        # Before the row phase of a stream it holds what it held when the stream began.
        return base, split
    if cursor[2] is None:
        return image_index, (cursor[1], "")
    # The rows up to the cursor's key are the image's: below the next string after it.
    return image_index, (cursor[1], cursor[2] + "\0")


def stage_chunk(staging: RowStore, split: tuple | None, cursor: tuple | None,
                next_cursor: tuple | None, rows: tuple) -> None:
    """Stage one chunk: in the stream's full part (at or after ``split``; everything when
    ``split`` is None), the staged rows in the chunk's range become exactly the chunk's
    rows; in the resumed part, each row of the chunk replaces ours."""
    # The range of rows the chunk covers: (low, high]; a cursor key of None means
    # "before every key" (read_chunk makes one only at the start of the row phase).
    low = None
    if cursor is not None and cursor[0] == 1 and cursor[2] is not None:
        low = (cursor[1], cursor[2])
    if next_cursor is None:
        high = None
    elif next_cursor[0] == 1 and next_cursor[2] is not None:
        high = (next_cursor[1], next_cursor[2])
    else:
        high = ()  # the chunk covered no rows (tombstones only)
    if high != ():
        present = {(kind, key) for kind, key, _, _ in rows}
        for kind, key in staging.rows_between(low, high):
            if (split is None or (kind, key) >= tuple(split)) and (kind, key) not in present:
                write_row(staging, kind, key, None, 0, tombstone=False)
    for kind, key, value, version in rows:
        write_row(staging, kind, key, value, version, tombstone=False)


class ImageCache:
    """The point-in-time images one replica serves, by index: at most ``images_max``
    open (the least recently used is closed first), each closed after ``idle_ticks``
    unused. An image opened within ``reuse_ticks`` is shared by later requests, so
    that many receivers do not each pin a copy."""

    def __init__(self, images_max: int, reuse_ticks: int, idle_ticks: int) -> None:
        assert images_max >= 1, "at least one image can be served"
        self.images_max = images_max
        self.reuse_ticks = reuse_ticks
        self.idle_ticks = idle_ticks
        self.images: dict[int, tuple[StateImage, int, int]] = {}  # index -> (image, opened, used)

    def get(self, index: int, newer_than: int, now: int, open_image) -> StateImage:
        """The open image at ``index``; else a recent one newer than ``newer_than``; else
        ``open_image()`` (an image of the current rows)."""
        if index in self.images:
            image, opened, _ = self.images[index]
        else:
            recent = [i for i, (_, opened, _) in self.images.items()
                      if i > newer_than and now - opened < self.reuse_ticks]
            if recent:
                image, opened, _ = self.images[max(recent)]
            else:
                while len(self.images) >= self.images_max:
                    oldest = min(self.images, key=lambda i: self.images[i][2])
                    self.images.pop(oldest)[0].close()
                image, opened = open_image(), now
                if image.index in self.images:
                    image.close()
                    image, opened, _ = self.images[image.index]
        self.images[image.index] = (image, opened, now)
        return image

    def close_idle(self, now: int) -> None:
        for index in [i for i, (_, _, used) in self.images.items()
                      if now - used >= self.idle_ticks]:
            self.images.pop(index)[0].close()

    def lowest_index(self) -> int | None:
        return min(self.images) if self.images else None

    def __len__(self) -> int:
        return len(self.images)


__all__ = ["ImageCache", "cursor_order", "resume_point", "stage_chunk"]

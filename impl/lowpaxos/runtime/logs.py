"""Structured logs: one JSON object per line on stderr, one line per event.

``log.info("replica_ready", resp_port=6380)`` writes
``{"ts": 1700000000.123, "level": "info", "event": "replica_ready", "replica": 0, "resp_port": 6380}``.
Levels: debug < info < warning < error; LOWPAXOS_LOG_LEVEL picks the lowest shown.
"""

from __future__ import annotations

import json
import os
import sys
import time

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger:
    def __init__(self, stream=None, level: str | None = None, **context) -> None:
        self.stream = stream if stream is not None else sys.stderr
        name = (level or os.environ.get("LOWPAXOS_LOG_LEVEL", "info")).lower()
        self.threshold = LEVELS.get(name, LEVELS["info"])
        self.context = context

    def log(self, level: str, event: str, **fields) -> None:
        if LEVELS[level] < self.threshold:
            return
        record = {"ts": round(time.time(), 6), "level": level, "event": event}
        record.update(self.context)
        record.update(fields)
        try:
            self.stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not stop a replica

    def debug(self, event: str, **fields) -> None:
        self.log("debug", event, **fields)

    def info(self, event: str, **fields) -> None:
        self.log("info", event, **fields)

    def warning(self, event: str, **fields) -> None:
        self.log("warning", event, **fields)

    def error(self, event: str, **fields) -> None:
        self.log("error", event, **fields)

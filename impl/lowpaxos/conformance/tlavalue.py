"""Read the TLA+ values TLC prints in error traces back into Python.

TLC prints a state's variables as TLA+ expressions: numbers, strings, TRUE and
FALSE, model values (bare names), tuples ``<<a, b>>``, sets ``{a, b}``, records
``[f |-> v]`` and functions ``(k1 :> v1 @@ k2 :> v2)``; a function whose domain
is 1..n prints as a tuple. This recursive-descent reader turns them into
Python values: tuples stay tuples (index i is TLA+ index i + 1), sets become
frozensets, records and functions dicts (``Record`` keeps records apart from
functions). Every loop of the reader takes at least one token per turn, and
``take`` raises at the end of the text, so the loops and the nesting are
bounded by the text's length.
"""

from __future__ import annotations

import re


class Record(dict):
    """A TLA+ record; hashable so that it can sit in a set."""

    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted((k, _freeze(v)) for k, v in self.items())))


class Function(dict):
    def __hash__(self) -> int:  # type: ignore[override]
        return hash(tuple(sorted(((repr(k), _freeze(v)) for k, v in self.items()))))


class ModelValue(str):
    pass


def _freeze(value):
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


_TOKEN = re.compile(r'\s*(<<|>>|\|->|:>|@@|\.\.|[{}\[\](),]|"(?:[^"\\]|\\.)*"|-?\d+|[A-Za-z_][A-Za-z0-9_]*)')


class TlaSyntaxError(ValueError):
    pass


def tokenize(text: str) -> list[str]:
    tokens = []
    position = 0
    while position < len(text):
        if text[position:].strip() == "":
            break
        match = _TOKEN.match(text, position)
        if match is None:
            raise TlaSyntaxError(f"cannot read TLA+ value at {text[position:position + 30]!r}")
        tokens.append(match.group(1))
        position = match.end()
    return tokens


class _Reader:
    def __init__(self, tokens: list[str]) -> None:
        self.tokens = tokens
        self.index = 0

    def peek(self) -> str | None:
        return self.tokens[self.index] if self.index < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise TlaSyntaxError(f"expected {expected or 'a value'}, got {token!r}")
        self.index += 1
        return token

    def items(self, closing: str) -> list:
        values = []
        if self.peek() == closing:
            self.take(closing)
            return values
        while True:
            values.append(self.value())
            token = self.take()
            if token == closing:
                return values
            if token != ",":
                raise TlaSyntaxError(f"expected , or {closing}, got {token!r}")

    def value(self):
        token = self.take()
        if token == "<<":
            return tuple(self.items(">>"))
        if token == "{":
            return frozenset(_hashable(v) for v in self.items("}"))
        if token == "[":
            record = Record()
            if self.peek() == "]":
                self.take("]")
                return record
            while True:
                name = self.take()
                self.take("|->")
                record[name] = self.value()
                token = self.take()
                if token == "]":
                    return record
                if token != ",":
                    raise TlaSyntaxError(f"expected , or ] in a record, got {token!r}")
        if token == "(":
            function = Function()
            while True:
                key = self.value()
                self.take(":>")
                function[_hashable(key)] = self.value()
                token = self.take()
                if token == ")":
                    return function
                if token != "@@":
                    raise TlaSyntaxError(f"expected @@ or ) in a function, got {token!r}")
        if token.startswith('"'):
            return token[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        if token == "TRUE":
            return True
        if token == "FALSE":
            return False
        if re.fullmatch(r"-?\d+", token):
            number = int(token)
            if self.peek() == "..":  # an interval, as TLC sometimes prints 1..3
                self.take("..")
                return frozenset(range(number, int(self.take()) + 1))
            return number
        return ModelValue(token)


def _hashable(value):
    if isinstance(value, dict) and not isinstance(value, (Record, Function)):
        return Function(value)
    return value


def parse_value(text: str):
    reader = _Reader(tokenize(text))
    value = reader.value()
    if reader.peek() is not None:
        raise TlaSyntaxError(f"text left after the value: {reader.peek()!r}")
    return value


def at(function, key):
    """``f[key]`` for a TLA+ function that TLC may have printed as a tuple."""
    if isinstance(function, tuple):
        return function[key - 1]
    return function[key]


def show(value) -> str:
    """A value in TLA+ syntax again, for reports."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, ModelValue):
        return str(value)
    if isinstance(value, str):
        return '"' + value + '"'
    if isinstance(value, tuple):
        return "<<" + ", ".join(show(v) for v in value) + ">>"
    if isinstance(value, frozenset):
        return "{" + ", ".join(sorted(show(v) for v in value)) + "}"
    if isinstance(value, Record):
        return "[" + ", ".join(f"{k} |-> {show(v)}" for k, v in value.items()) + "]"
    if isinstance(value, dict):
        return "(" + " @@ ".join(f"{show(k)} :> {show(v)}" for k, v in value.items()) + ")"
    return str(value)

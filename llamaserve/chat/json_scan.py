"""An incremental JSON syntax checker: finds where one JSON value ends in text that arrives in pieces.

Tool-call parsers stream a call's arguments while the model writes them, so
they must know, without re-reading what they have seen, whether the text so far
is still a valid prefix of a JSON value and where that value ends. The scanner
is a small push-down automaton resumed at each new piece; it never builds the
value (json.loads does that once, when it is complete).
"""

from __future__ import annotations

import re

_WS = " \t\n\r"
_STRING_STOP = re.compile(r'["\\\x00-\x1f]')
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NUMBER_CHARS = frozenset("0123456789+-.eE")
_ESCAPES = frozenset('"\\/bfnrtu')
_HEX = frozenset("0123456789abcdefABCDEF")

# what the scanner expects next
_VALUE, _VALUE_OR_CLOSE, _KEY, _KEY_OR_CLOSE, _COLON, _AFTER = range(6)
# inside a token
_NONE, _STRING, _ESCAPE, _UNICODE, _NUMBER_TOKEN, _LITERAL = range(6)


class JsonSyntaxError(ValueError):
    def __init__(self, message: str, pos: int):
        super().__init__(f"{message} at offset {pos}")
        self.pos = pos


class JsonScanner:
    """Checks one JSON value, piece by piece.

    `scan(text, start)` reads text[start:] (the caller keeps the text; the
    scanner keeps only its state) and returns how far it got: the end of the
    value once `done`, else len(text). `depth` and `in_key` let callers watch the
    top-level object's keys go by.
    """

    def __init__(self) -> None:
        self.stack: list[str] = []
        self.expect = _VALUE
        self.token = _NONE
        self.token_start = 0
        self.pending = ""  # the rest of a literal being matched (true, false, null)
        self.hex_left = 0
        self.key = False  # the string being read is an object key
        self.done = False

    @property
    def depth(self) -> int:
        return len(self.stack)

    def scan(self, text: str, start: int) -> int:
        i, n = start, len(text)
        while i < n and not self.done:
            tok = self.token
            if tok == _STRING:
                m = _STRING_STOP.search(text, i)
                if m is None:
                    return n
                i = m.start()
                c = text[i]
                if c == '"':
                    self.token = _NONE
                    i += 1
                    if self.key:
                        self.key = False
                        self.expect = _COLON
                    else:
                        self._value_done()
                elif c == "\\":
                    self.token = _ESCAPE
                    i += 1
                else:
                    raise JsonSyntaxError("control character in string", i)
                continue
            c = text[i]
            if tok == _ESCAPE:
                if c not in _ESCAPES:
                    raise JsonSyntaxError(f"invalid escape \\{c}", i)
                if c == "u":
                    self.token, self.hex_left = _UNICODE, 4
                else:
                    self.token = _STRING
                i += 1
            elif tok == _UNICODE:
                if c not in _HEX:
                    raise JsonSyntaxError("invalid \\u escape", i)
                self.hex_left -= 1
                if self.hex_left == 0:
                    self.token = _STRING
                i += 1
            elif tok == _NUMBER_TOKEN:
                if c in _NUMBER_CHARS:
                    i += 1
                else:
                    self._end_number(text, i)
            elif tok == _LITERAL:
                if c != self.pending[0]:
                    raise JsonSyntaxError("invalid literal", i)
                self.pending = self.pending[1:]
                i += 1
                if not self.pending:
                    self.token = _NONE
                    self._value_done()
            else:
                i = self._structural(text, i, c)
        return i

    def finish(self, text: str) -> None:
        """The text ends here: a top-level number ends with it; anything else unfinished is an error."""
        if self.token == _NUMBER_TOKEN and not self.stack:
            self._end_number(text, len(text))
        if not self.done:
            raise JsonSyntaxError("unexpected end of JSON", len(text))

    def _structural(self, text: str, i: int, c: str) -> int:
        if c in _WS:
            return i + 1
        expect = self.expect
        if expect in (_VALUE, _VALUE_OR_CLOSE):
            if c == "]" and expect == _VALUE_OR_CLOSE:
                self.stack.pop()
                self._value_done()
            elif c == "{":
                self.stack.append("{")
                self.expect = _KEY_OR_CLOSE
            elif c == "[":
                self.stack.append("[")
                self.expect = _VALUE_OR_CLOSE
            elif c == '"':
                self.token, self.key = _STRING, False
            elif c == "-" or c.isdigit():
                self.token, self.token_start = _NUMBER_TOKEN, i
            elif c in "tfn":
                self.token = _LITERAL
                self.pending = {"t": "rue", "f": "alse", "n": "ull"}[c]
            else:
                raise JsonSyntaxError(f"unexpected {c!r}, expected a value", i)
        elif expect in (_KEY, _KEY_OR_CLOSE):
            if c == '"':
                self.token, self.key = _STRING, True
            elif c == "}" and expect == _KEY_OR_CLOSE:
                self.stack.pop()
                self._value_done()
            else:
                raise JsonSyntaxError(f"unexpected {c!r}, expected a key", i)
        elif expect == _COLON:
            if c != ":":
                raise JsonSyntaxError(f"unexpected {c!r}, expected ':'", i)
            self.expect = _VALUE
        else:  # after a value inside a container
            top = self.stack[-1]
            if c == ",":
                self.expect = _KEY if top == "{" else _VALUE
            elif (c == "}" and top == "{") or (c == "]" and top == "["):
                self.stack.pop()
                self._value_done()
            else:
                raise JsonSyntaxError(f"unexpected {c!r}, expected ',' or a closing bracket", i)
        return i + 1

    def _end_number(self, text: str, end: int) -> None:
        if _NUMBER.fullmatch(text, self.token_start, end) is None:
            raise JsonSyntaxError("invalid number", self.token_start)
        self.token = _NONE
        self._value_done()

    def _value_done(self) -> None:
        if self.stack:
            self.expect = _AFTER
        else:
            self.done = True


def scan_value(text: str, start: int = 0) -> int:
    """End offset of the complete JSON value at text[start:] (leading whitespace allowed)."""
    s = JsonScanner()
    end = s.scan(text, start)
    if not s.done:
        s.finish(text)
        end = len(text)
    return end

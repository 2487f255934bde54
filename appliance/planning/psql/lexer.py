"""Just enough of psql's lexer to find include meta-commands and variable references.

Text is handled as latin-1 so every byte maps to one character and back: hashing sees
the exact bytes psql sees, whatever the script's encoding.

Include commands are found the way psql finds them: a backslash outside quotes,
comments and dollar-quoted bodies starts a meta-command that ends at the end of the
line or at the next unquoted backslash. COPY ... FROM STDIN data is skipped. A file
that ends inside a quote or comment is refused: psql would fail on it anyway, and
refusing keeps a lexer disagreement from silently hiding an include from the hash.

Whitespace and ``--`` comments where psql's query buffer is empty (at the start of a file,
between statements) never reach the server: psql drops them. They are found as *gaps*, so that
hashing can leave them out. Anything inside a statement reaches the server, which can store it
(``current_query()`` in an audit trigger), and stays. A statement ends where psql ends it: at a
``;`` outside parentheses and outside a ``CREATE FUNCTION``'s ``BEGIN ... END``.

Variable references are found with a deliberately wider net (anywhere in the text,
quotes included): keying a step on a variable it does not use costs a rebuild, missing
one it does use would reuse a wrong state.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from appliance.errors import InvalidArgument
from appliance.planning.psql.meta import check_meta_command

INCLUDE_COMMANDS = {"i": False, "include": False, "ir": True, "include_relative": True}
# Meta-commands whose argument is the rest of the line, backslashes included.
_WHOLE_LINE_COMMANDS = {"!", "copy", "h", "help", "ef", "ev", "sf", "sv"}

_VAR = r"[A-Za-z0-9_\x80-\xff]"
_IDENT_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_$") | frozenset(
    chr(c) for c in range(0x80, 0x100)
)
_VARIABLE_REF = re.compile(rf"::|:(?:({_VAR}+)|'({_VAR}+)'|\"({_VAR}+)\"|\{{\?({_VAR}+)\}})")
_DOLLAR_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\xff][A-Za-z0-9_\x80-\xff]*)?\$")
_COPY_FROM_STDIN = re.compile(r"copy\b[^;]*?\bfrom\s+stdin\b", re.IGNORECASE | re.DOTALL)
_LEADING_NOISE = re.compile(r"(?:\s+|--[^\n]*(?:\n|$))*")


def _leading_noise_end(text: str) -> int:
    """Where the whitespace and ``--`` comments at the start of ``text`` end (the pattern matches
    the empty string, so it always matches)."""
    found = _LEADING_NOISE.match(text)
    return found.end() if found else 0
_WHITESPACE = " \t\n\r\f\v"
_WORD = re.compile(r"[A-Za-z_\x80-\xff][A-Za-z0-9_$\x80-\xff]*")
_SLASH_ESCAPES = {"n": "\n", "t": "\t", "b": "\b", "r": "\r", "f": "\f"}


@dataclass(frozen=True)
class Piece:
    """Part of a meta-command argument: literal text, or a form psql would substitute."""

    text: str
    form: str = "literal"  # literal | var | quoted_var | exists_var | backquote


@dataclass(frozen=True)
class IncludeDirective:
    start: int
    end: int
    relative: bool
    arguments: tuple[tuple[Piece, ...], ...]


def to_text(data: bytes) -> str:
    return data.decode("latin-1")


def to_bytes(text: str) -> bytes:
    return text.encode("latin-1")


def from_user(value: str) -> str:
    """A str from argv/JSON in the latin-1 view used for scripts (UTF-8 bytes)."""
    return value.encode("utf-8", "surrogateescape").decode("latin-1")


def to_user(value: str) -> str:
    return value.encode("latin-1").decode("utf-8", "surrogateescape")


def variable_references(text: str) -> set[str]:
    """Names referenced as ``:name``, ``:'name'``, ``:"name"`` or ``:{?name}`` (user spelling)."""
    names: set[str] = set()
    for match in _VARIABLE_REF.finditer(text):
        name = next((g for g in match.groups() if g), None)
        if name:
            names.add(to_user(name))
    return names


def find_includes(text: str, where: str) -> list[IncludeDirective]:
    """Every ``\\i``/``\\include``/``\\ir``/``\\include_relative`` psql would execute."""
    return scan(text, where)[0]


def scan(text: str, where: str) -> tuple[list[IncludeDirective], list[tuple[int, int]]]:
    """The includes, and the gaps: (start, end) spans of whitespace and ``--`` comments that psql
    drops because its query buffer is empty there."""
    scanner = _Scanner(text, where)
    scanner.run()
    return scanner.includes, scanner.gaps


class _Scanner:
    def __init__(self, text: str, where: str):
        self.text = text
        self.where = where
        self.includes: list[IncludeDirective] = []
        self.statement_start = 0
        self.copy_pending = False
        self.gaps: list[tuple[int, int]] = []
        self.buffer_empty = True  # psql has nothing of a statement yet
        self.words: list[str] = []  # of the statement psql is collecting, lowercased
        self.parens = self.begin_depth = 0

    def run(self) -> None:
        text, i, n = self.text, 0, len(self.text)
        while i < n:
            ch = text[i]
            if ch == "\n" and self.copy_pending:
                i = self._skip_copy_data(i + 1)
            elif self.buffer_empty and not self.copy_pending and (ch in _WHITESPACE or text.startswith("--", i)):
                i = self._gap(i)
            elif ch == "-" and text.startswith("--", i):
                i = self._line_end(i)
            elif ch == "\\":
                i = self._meta_command(i)  # leaves psql's query buffer as it was
                self.statement_start = i
            elif ch == ";":
                self._end_statement(i)
                i += 1
            elif ch in _WHITESPACE:
                i += 1
            else:
                self.buffer_empty = False
                i = self._token(i)

    def _token(self, i: int) -> int:
        text, ch = self.text, self.text[i]
        if ch == "/" and text.startswith("/*", i):
            return self._skip_block_comment(i)
        if ch == "'":
            return self._skip_single_quoted(i, escapes=self._is_escape_string(i))
        if ch == '"':
            return self._skip_until(i, i + 1, '"', "quoted identifier")
        if ch == "$" and (m := _DOLLAR_TAG.match(text, i)) and not self._after_ident(i):
            return self._skip_until(i, m.end(), m.group(0), "dollar-quoted string")
        if ch in "()":
            self.parens = self.parens + 1 if ch == "(" else max(0, self.parens - 1)
        elif (word := _WORD.match(text, i)) and not self._after_ident(i):
            self._word(word.group(0).lower())
            return word.end()
        return i + 1

    def _gap(self, start: int) -> int:
        i, text = start, self.text
        while i < len(text) and (text[i] in _WHITESPACE or text.startswith("--", i)):
            i = self._line_end(i) if text[i] == "-" else i + 1
        self.gaps.append((start, i))
        return i

    def _word(self, word: str) -> None:
        """psql's own heuristic (psqlscan.l): in CREATE [OR REPLACE] FUNCTION|PROCEDURE, a ``;``
        between BEGIN (or, inside one, CASE) and its END does not end the statement."""
        self.words.append(word)
        head = self.words[:4]
        routine = head[:1] == ["create"] and (
            head[1:2] in (["function"], ["procedure"]) or (head[1:3] == ["or", "replace"]
                                                           and head[3:4] in (["function"], ["procedure"])))
        if not routine or self.parens:
            return
        if word == "begin" or (word == "case" and self.begin_depth >= 1):
            self.begin_depth += 1
        elif word == "end" and self.begin_depth > 0:
            self.begin_depth -= 1

    # -- SQL-level constructs ------------------------------------------------
    def _after_ident(self, i: int) -> bool:
        return i > 0 and self.text[i - 1] in _IDENT_CHARS

    def _is_escape_string(self, i: int) -> bool:
        return i > 0 and self.text[i - 1] in "eE" and not (i > 1 and self.text[i - 2] in _IDENT_CHARS)

    def _line_end(self, i: int) -> int:
        end = self.text.find("\n", i)
        return len(self.text) if end < 0 else end

    def _unterminated(self, what: str, start: int) -> None:
        line = self.text.count("\n", 0, start) + 1
        raise InvalidArgument(
            f"unterminated {what} starting at line {line} of {self.where}",
            {"path": self.where, "line": line},
        )

    def _skip_block_comment(self, start: int) -> int:
        depth, i, text = 0, start, self.text
        while i < len(text):
            if text.startswith("/*", i):
                depth, i = depth + 1, i + 2
            elif text.startswith("*/", i):
                depth, i = depth - 1, i + 2
                if depth == 0:
                    return i
            else:
                i += 1
        self._unterminated("comment", start)
        return i

    def _skip_single_quoted(self, start: int, escapes: bool) -> int:
        i, text = start + 1, self.text
        while i < len(text):
            ch = text[i]
            if escapes and ch == "\\":
                i += 2
            elif ch == "'":
                if text.startswith("''", i):
                    i += 2
                else:
                    return i + 1
            else:
                i += 1
        self._unterminated("quoted string", start)
        return i

    def _skip_until(self, start: int, body: int, closer: str, what: str) -> int:
        end = self.text.find(closer, body)
        if end < 0:
            self._unterminated(what, start)
        return end + len(closer)

    def _end_statement(self, i: int) -> None:
        if self.parens == 0 and self.begin_depth == 0:  # psql sends the statement: its buffer is empty
            self.buffer_empty, self.words = True, []
        else:
            self.buffer_empty = False
        statement = self.text[self.statement_start : i]
        body = statement[_leading_noise_end(statement) :]
        if _COPY_FROM_STDIN.match(body):
            self.copy_pending = True
        self.statement_start = i + 1

    def _skip_copy_data(self, i: int) -> int:
        """psql feeds the following lines to COPY until a line that is exactly ``\\.``."""
        self.copy_pending = False
        text = self.text
        while i < len(text):
            end = self._line_end(i)
            if text[i:end].rstrip("\r") == "\\.":
                return end
            i = end + 1
        return len(text)

    # -- meta-commands ---------------------------------------------------------
    def _meta_command(self, start: int) -> int:
        text, j = self.text, start + 1
        if j < len(text) and text[j] == "\\":
            return j + 1  # the \\ separator
        while j < len(text) and text[j] not in " \t\r\n\f\v\\":  # psql's whitespace
            j += 1
        name = text[start + 1 : j]
        if name.lower() == "copy":
            name = "copy"  # psql matches \copy case-insensitively (pg_strcasecmp), every other name exactly
        if name in _WHOLE_LINE_COMMANDS:
            end = self._line_end(j)
            check_meta_command(name, (), text[j:end], self.where)
            if name == "copy" and re.search(r"\bfrom\s+stdin\b", text[j:end], re.IGNORECASE):
                self.copy_pending = True
            return end
        arguments, end = lex_slash_arguments(text, j)
        check_meta_command(name, arguments, text[j:end], self.where)
        if name in INCLUDE_COMMANDS:
            self.includes.append(IncludeDirective(start, end, INCLUDE_COMMANDS[name], arguments))
        return end


def lex_slash_arguments(text: str, i: int) -> tuple[tuple[tuple[Piece, ...], ...], int]:
    """Arguments up to the end of the line or an unquoted backslash, psql-style."""
    arguments: list[tuple[Piece, ...]] = []
    n = len(text)
    while True:
        while i < n and text[i] in " \t\r\f\v":
            i += 1
        if i >= n or text[i] in "\n\\":
            return tuple(arguments), i
        pieces: list[Piece] = []
        while i < n and text[i] not in " \t\r\f\v\n\\":
            ch = text[i]
            if ch == "'":
                value, i = _single_quoted_argument(text, i)
                pieces.append(Piece(value))
            elif ch in '"`':
                end = text.find(ch, i + 1)
                end = n if end < 0 else end + 1
                pieces.append(Piece(text[i:end], "literal" if ch == '"' else "backquote"))
                i = end
            elif ch == ":" and (m := _VARIABLE_REF.match(text, i)) and m.group(0) != "::":
                name, quoted, ident, exists = m.groups()
                form = "var" if name else ("exists_var" if exists else "quoted_var")
                pieces.append(Piece(name or quoted or ident or exists, form))
                i = m.end()
            else:
                pieces.append(Piece(ch))
                i += 1
        arguments.append(tuple(pieces))


def _single_quoted_argument(text: str, i: int) -> tuple[str, int]:
    out: list[str] = []
    i += 1
    while i < len(text) and text[i] != "\n":
        ch = text[i]
        if ch == "'":
            if text.startswith("''", i):
                out.append("'")
                i += 2
                continue
            return "".join(out), i + 1
        if ch == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if octal := re.match(r"[0-7]{1,3}", text[i + 1 : i + 4]):
                out.append(chr(int(octal.group(0), 8) & 0xFF))
                i += 1 + len(octal.group(0))
            elif nxt == "x" and (hexa := re.match(r"[0-9A-Fa-f]{1,2}", text[i + 2 : i + 4])):
                out.append(chr(int(hexa.group(0), 16)))
                i += 2 + len(hexa.group(0))
            else:
                out.append(_SLASH_ESCAPES.get(nxt, nxt))
                i += 2
            continue
        out.append(ch)
        i += 1
    return "".join(out), i

"""The config editors: YAML, TOML and JSON, parsed, edited in place and written back.

The standard library has no YAML and cannot write TOML, so YamlDocument and TomlDocument are
small line editors (one LineEditor underneath) for exactly the YAML and TOML the agents use:
they change only the lines of the settings they set, and keep every other line, comment and
line ending. JSON files are parsed and rewritten whole, keys in order and numbers as they were
spelled (Spelled). A file an editor cannot be sure of raises CannotEdit, which says which
file, where and why; it is never replaced.
"""
import json
import re
from typing import NamedTuple


class CannotEdit(Exception):
    """A config file FreeRide will not change; the message says which file, where and why."""


class YamlNode:
    """One value in a YAML file and the lines it spans (line..last, inclusive).

    kind is "map" (entries), "seq" (items), "scalar" (value), "flow" (a one-line [..] or {..};
    value), "null" (nothing written after the key), or one FreeRide never reads or rewrites:
    "block" (a | or > scalar) and "text" (a plain scalar over several lines). For a one-line
    value, start..end are its columns on `line`, so it can be replaced in place.
    """

    def __init__(self, kind, line, col, value=None, start=0, end=0):
        self.kind, self.line, self.col, self.last = kind, line, col, line
        self.value, self.start, self.end = value, start, end
        self.quoted = False
        self.entries = {}   # map: key -> YamlEntry
        self.items = []     # seq: YamlItem


class YamlEntry(NamedTuple):
    line: int       # the line of `key:`
    colon: int      # the column just after the ':'
    node: YamlNode


class YamlItem(NamedTuple):
    line: int       # the line of its '-'
    node: YamlNode


_WHAT = {"seq": "a list", "map": "a mapping", "flow": "a one-line [..] or {..} value",
         "scalar": "a single value", "block": "a multi-line value", "text": "a multi-line value"}
OPAQUE = object()  # the data of a value FreeRide does not read: equal to nothing
YAML_ESCAPES = {"0": "\0", "a": "\a", "b": "\b", "t": "\t", "\t": "\t", "n": "\n", "v": "\v",
                "f": "\f", "r": "\r", "e": "\x1b", " ": " ", '"': '"', "/": "/", "\\": "\\",
                "N": "\x85", "_": "\xa0", "L": "\u2028", "P": "\u2029"}


def _trivia(line):
    stripped = line.strip()
    return not stripped or stripped.startswith("#")


def _is_dash(line, col):
    return line.startswith("-", col) and (len(line) == col + 1 or line[col + 1] == " ")


def _spaces(line):
    return len(line) - len(line.lstrip(" "))


def _quoted_end(text, i):
    """The index just after the quoted scalar that opens at text[i]; -1 if it does not close."""
    quote, j = text[i], i + 1
    while j < len(text):
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote:
            if quote == "'" and text[j + 1:j + 2] == "'":
                j += 2
                continue
            return j + 1
        j += 1
    return -1


def _comment_start(line, p):
    """Where the comment of a line starts (a '#' after whitespace), searching from p."""
    m = re.compile(r"[ \t]#").search(line, p)
    return m.start() if m else len(line)


def _flow_end(line, p):
    """The index just after the [..] or {..} that opens at line[p]; -1 if it goes on."""
    depth, j = 0, p
    while j < len(line):
        c = line[j]
        if c in "\"'" and line[p:j].rstrip()[-1:] in ("[", "{", ",", ":"):  # opens a quoted item
            j = _quoted_end(line, j)
            if j < 0:
                return -1
            continue
        if c in "[{":
            depth += 1
        elif c in "]}":
            depth -= 1
            if depth == 0:
                return j + 1
        elif c == "#" and line[j - 1] in " \t\n":
            if "\n" not in line[j:]:
                return -1
            j = line.index("\n", j)
        j += 1
    return -1


def _plain(text):
    """The value of a plain scalar, as the agents' YAML loaders (YAML 1.1 and 1.2) read it."""
    low = text.lower()
    if low in ("", "~", "null"):
        return None
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if re.fullmatch(r"[-+]?\d+", text):
        return int(text)
    if re.fullmatch(r"[-+]?(\d+\.\d*|\.\d+|\d+)([eE][-+]?\d+)?", text):
        return float(text)
    return text


def _same(a, b):
    """Equal and of the same types all the way down (True is not 1, 1 is not 1.0; a number read
    from a JSON file is of its plain type)."""
    if _plain_type(a) is not _plain_type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


# Strings written unquoted: a letter, '_' or '/' first (never a digit, so no number, date or
# hex reading), then only characters no YAML loader gives a meaning to; other strings are
# double-quoted.
SAFE_PLAIN = re.compile(r"[^\W\d][\w./:@+ -]*|/[\w./:@+-]*")
YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "y", "n", "null"}


def yaml_scalar(value):
    """value written as a YAML scalar that every YAML loader reads back as exactly value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    plain = (SAFE_PLAIN.fullmatch(text) and text == text.rstrip() and ": " not in text
             and not text.endswith(":") and text.lower() not in YAML_WORDS
             and _plain(text) == text)
    if plain:
        return text
    quoted = json.dumps(text, ensure_ascii=False)  # JSON's escapes are a subset of YAML's
    return quoted.replace("\x85", "\\N").replace("\u2028", "\\L").replace("\u2029", "\\P")


def yaml_inline(value):
    if isinstance(value, list):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    return yaml_scalar(value)


class LineEditor:
    """A config file as its lines and their line ends, edited a few lines at a time.

    The shared part of the YAML and TOML editors: a subclass parses self.lines in _parse()
    (raising CannotEdit with error()) and changes them only through _splice(), which parses
    the result again, so an edit can never leave a file its editor would not read. The
    byte-order mark, each line's own ending and a missing last newline are kept.
    """
    language = ""

    def __init__(self, text, name="the file"):
        self.name = name
        self.bom = text.startswith("\ufeff")
        if self.bom:
            text = text[1:]
        self.lines, self.ends = [], []
        parts = text.split("\n")
        for k, part in enumerate(parts):
            if k == len(parts) - 1:
                if part:
                    self.lines.append(part)
                    self.ends.append("")
                break
            crlf = part.endswith("\r")
            self.lines.append(part[:-1] if crlf else part)
            self.ends.append("\r\n" if crlf else "\n")
        self.newline = "\r\n" if self.ends.count("\r\n") > self.ends.count("\n") else "\n"
        self._parse()

    def text(self):
        return ("\ufeff" if self.bom else "") + "".join(map("".join, zip(self.lines, self.ends)))

    def error(self, i, message):
        return CannotEdit(f"{self.name} line {i + 1}: {message}")

    def _parse(self):
        raise NotImplementedError

    def _splice(self, first, count, new):
        """Replace `count` lines from `first` with the lines `new`, then parse again."""
        if new and first == len(self.lines) and self.ends and not self.ends[-1]:
            self.ends[-1] = self.newline
        keep = self.ends[first] if count == len(new) == 1 else None
        self.lines[first:first + count] = new
        self.ends[first:first + count] = [self.newline] * len(new)
        if keep is not None:
            self.ends[first] = keep
        try:
            self._parse()
        except CannotEdit as e:  # an edit must never make a file this class cannot read
            raise AssertionError(f"the {self.language} editor produced a file it cannot read: "
                                 f"{e}") from None


class YamlDocument(LineEditor):
    """A YAML file as its lines, with just enough structure to change a few settings.

    It understands block mappings and block lists (of scalars and of mappings, indented or
    not), comments, plain, single- and double-quoted scalars, and one-line flow collections
    such as `[chat, edit, apply]`. It refuses, with CannotEdit, what it cannot be sure of:
    anchors, aliases and tags, several documents, directives, tabs used for indentation,
    complex keys, duplicate keys, multi-line quoted or flow values; block scalars (| and >)
    and multi-line plain scalars are kept as they are but never rewritten. Edits replace or
    add only the lines of the settings they touch, and the text is parsed again after each
    one, so an edit can never leave a file this class would not read.
    """

    language = "YAML"

    # -- reading ------------------------------------------------------------------------------
    def _parse(self):
        self.sig = [i for i, line in enumerate(self.lines) if not _trivia(line)]
        self.pos, self.steps, self.indentless = 0, [], False
        if self.sig and re.match(r"---(\s|$)", self.lines[self.sig[0]]):
            if not _trivia(self.lines[self.sig[0]][3:]):
                raise self.error(self.sig[0], "a value on the '---' line is not supported")
            self.pos = 1
        for i in self.sig[self.pos:]:
            if re.match(r"(---|\.\.\.)(\s|$)", self.lines[i]):
                raise self.error(i, "several YAML documents in one file are not supported")
            if self.lines[i].startswith("%"):
                raise self.error(i, "YAML directives (%) are not supported")
        j = self._peek()
        if j is None:
            self.root = YamlNode("null", len(self.lines), 0)
        else:
            col = self._indent(j)
            line = self.lines[j]
            if line[col] in "[{":
                self.pos += 1
                self.root = self._inline(j, col, -1)
            elif _is_dash(line, col) or self._key_at(j, col):
                self.root = self._block(j, col, -1)
            else:
                raise self.error(j, "the file holds a single value, not settings")
            if self._peek() is not None:
                raise self.error(self._peek(), "unexpected indentation or text")
        self.step = min(self.steps) if self.steps else 2

    def _peek(self):
        return self.sig[self.pos] if self.pos < len(self.sig) else None

    def _indent(self, i):
        line = self.lines[i]
        n = _spaces(line)
        if line[n] == "\t":
            raise self.error(i, "tabs used for indentation are not supported")
        return n

    def _key_at(self, i, col):
        """(key, column after its ':') if line i holds `key:` at col, else None."""
        line = self.lines[i]
        c = line[col:col + 1]
        if c in ("?", ":") and (len(line) == col + 1 or line[col + 1] == " "):
            raise self.error(i, "complex keys ('? ') are not supported")
        if c and c in "&*!":
            raise self.error(i, "anchors, aliases and tags (&name, *name, !tag) are not supported")
        if c in ('"', "'"):
            end = _quoted_end(line, col)
            m = re.compile(r" *:(?= |$)").match(line, end) if end > 0 else None
            return (self._unquote(line[col:end], i), m.end()) if m else None
        if not c or c in "#|>%@`[]{},":
            return None
        if _is_dash(line, col):
            return None
        for j in range(col, len(line)):
            if line[j] == ":" and (j + 1 == len(line) or line[j + 1] == " "):
                key = line[col:j].rstrip()
                if key == "<<":
                    raise self.error(i, "merge keys (<<) are not supported")
                return key, j + 1
            if line[j] == "#" and line[j - 1] in " \t":
                return None
        return None

    def _block(self, j, col, parent):
        """The block value whose first line is j, at column col, under a parent at `parent`."""
        line = self.lines[j]
        if _is_dash(line, col):
            return self._seq(j, col)
        if self._key_at(j, col):
            return self._map(j, col)
        if line[col] in "&*!":
            raise self.error(j, "anchors, aliases and tags (&name, *name, !tag) are not supported")
        node = YamlNode("text", j, col)  # a scalar alone on the lines under its key
        self._extend_opaque(node, parent)
        return node

    def _extend_opaque(self, node, parent):
        """Stretch node over the lines indented deeper than parent (blank lines included)."""
        for j in range(node.line + 1, len(self.lines)):
            if self.lines[j].strip() and _spaces(self.lines[j]) <= parent:
                break
            if self.lines[j].strip():
                node.last = j
        while self._peek() is not None and self._peek() <= node.last:
            self.pos += 1

    def _map(self, i, col):
        node = YamlNode("map", i, col)
        while True:
            found = self._key_at(i, col)
            if found is None:
                raise self.error(i, "a list item where a key was expected" if
                                 _is_dash(self.lines[i], col) else "expected a 'key: value' line")
            key, colon = found
            if key in node.entries:
                raise self.error(i, f"the key {key!r} appears twice")
            value = self._value(i, colon, col)
            node.entries[key] = YamlEntry(i, colon, value)
            node.last = max(node.last, value.last)
            j = self._peek()
            if j is None or self._indent(j) < col:
                return node
            if self._indent(j) > col:
                raise self.error(j, "unexpected indentation")
            i = j

    def _seq(self, i, col):
        node = YamlNode("seq", i, col)
        while True:
            item = self._value(i, col + 1, col, after_dash=True)
            node.items.append(YamlItem(i, item))
            node.last = max(node.last, item.last)
            j = self._peek()
            if j is None:
                return node
            indent = self._indent(j)
            if indent == col and _is_dash(self.lines[j], col):
                i = j
                continue
            if indent > col:
                raise self.error(j, "unexpected indentation")
            return node

    def _value(self, i, p, indent, after_dash=False):
        """The value after `key:` or `-` on line i (p: the column after the ':' or '-');
        indent is the column of that key or dash. Consumes the value's lines."""
        line = self.lines[i]
        q = p
        while q < len(line) and line[q] == " ":
            q += 1
        if q < len(line) and line[q] != "#":
            if after_dash:
                if _is_dash(line, q):
                    return self._seq(i, q)
                if self._key_at(i, q):
                    return self._map(i, q)
            self.pos += 1
            node = self._inline(i, q, indent)
            if node.kind == "block":
                self._extend_opaque(node, indent)
            elif node.kind == "scalar" and not node.quoted:
                while self._peek() is not None and self._indent(self._peek()) > indent:
                    j = self._peek()
                    if self._key_at(j, self._indent(j)):  # a plain scalar never holds ': '
                        raise self.error(j, "unexpected indentation")
                    node.kind, node.last = "text", j
                    self.pos += 1
            return node
        self.pos += 1
        j = self._peek()
        if j is not None:
            child = self._indent(j)
            if child > indent:
                if not after_dash:
                    self.steps.append(child - indent)
                return self._block(j, child, indent)
            if child == indent and not after_dash and _is_dash(self.lines[j], child):
                self.indentless = True
                return self._block(j, child, indent)
        return YamlNode("null", i, p, None, p, p)

    def _inline(self, i, p, indent):
        """The value written on line i from column p: a scalar, a flow collection or the
        header of a block scalar."""
        line = self.lines[i]
        c = line[p]
        if c in "&*!":
            raise self.error(i, "anchors, aliases and tags (&name, *name, !tag) are not supported")
        if c in "|>":
            if not re.fullmatch(r"[|>][1-9+-]{0,2}([ \t]+#.*)?[ \t]*", line[p:]):
                raise self.error(i, "unreadable block scalar header")
            return YamlNode("block", i, p)
        if c in "\"'":
            end = _quoted_end(line, p)
            if end < 0:
                return self._multi_line(i, p, _quoted_end)
            node = YamlNode("scalar", i, p, self._unquote(line[p:end], i), p, end)
            node.quoted = True
        elif c in "[{":
            end = _flow_end(line, p)
            if end < 0:
                return self._multi_line(i, p, _flow_end)
            value, stop = self._flow(line[p:end], 0, i)
            if stop != end - p:
                raise self.error(i, "unreadable [..] or {..} value")
            node = YamlNode("flow", i, p, value, p, end)
        elif c in "%@`,]}" or (c in "?:-" and (p + 1 == len(line) or line[p + 1] == " ")):
            raise self.error(i, f"a value cannot start with {c!r}")
        else:
            text = line[p:_comment_start(line, p)].rstrip()
            if ": " in text or text.endswith(":"):
                raise self.error(i, "a second ':' in a value (quote the value)")
            node = YamlNode("scalar", i, p, _plain(text), p, p + len(text))
        rest = line[node.end:]
        if node.kind != "block" and rest.strip() and not re.match(r"[ \t]+#", rest):
            raise self.error(i, f"unexpected text after the value: {rest.strip()!r}")
        return node

    def _multi_line(self, i, p, find_end):
        """A quoted or [..] value that goes on over several lines: kept, never read."""
        text = "\n".join([self.lines[i][p:], *self.lines[i + 1:]])
        end = find_end(text, 0)
        if end < 0:
            raise self.error(i, "a quoted or [..] value that never ends")
        last = i + text.count("\n", 0, end)
        rest = text[end:].split("\n", 1)[0]
        if rest.strip() and not re.match(r"[ \t]+#", rest):
            raise self.error(last, f"unexpected text after the value: {rest.strip()!r}")
        node = YamlNode("text", i, p)
        node.last = last
        while self._peek() is not None and self._peek() <= last:
            self.pos += 1
        return node

    def _flow(self, text, pos, i):
        """(value, end) of the flow value at text[pos]: a scalar, [..] or {..} of them."""
        while pos < len(text) and text[pos] == " ":
            pos += 1
        c = text[pos:pos + 1]
        if c in ("[", "{"):
            close, out = ("]", []) if c == "[" else ("}", {})
            pos += 1
            while True:
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if text[pos:pos + 1] == close:
                    return out, pos + 1
                item, pos = self._flow(text, pos, i)
                if c == "{":
                    if text[pos:pos + 1] != ":" or not isinstance(item, (str, int, float, bool)):
                        raise self.error(i, "unreadable {..} value")
                    if item in out:
                        raise self.error(i, f"the key {item!r} appears twice")
                    out[item], pos = self._flow(text, pos + 1, i)
                else:
                    out.append(item)
                while pos < len(text) and text[pos] == " ":
                    pos += 1
                if text[pos:pos + 1] == ",":
                    pos += 1
                elif text[pos:pos + 1] != close:
                    raise self.error(i, "unreadable [..] or {..} value")
        if c and c in "&*!":
            raise self.error(i, "anchors, aliases and tags (&name, *name, !tag) are not supported")
        if c in ('"', "'"):
            end = _quoted_end(text, pos)
            return self._unquote(text[pos:end], i), end
        start = pos
        while pos < len(text) and text[pos] not in ",[]{}" and not (
                text[pos] == ":" and (pos + 1 == len(text) or text[pos + 1] in " ,]}")):
            pos += 1
        return _plain(text[start:pos].strip()), pos

    def _unquote(self, text, i):
        if text[0] == "'":
            return text[1:-1].replace("''", "'")
        body, out, k = text[1:-1], [], 0
        while k < len(body):
            c = body[k]
            if c != "\\":
                out.append(c)
                k += 1
                continue
            e = body[k + 1:k + 2]
            width = {"x": 2, "u": 4, "U": 8}.get(e, 0)
            if e in YAML_ESCAPES:
                out.append(YAML_ESCAPES[e])
            elif width and re.fullmatch(r"[0-9a-fA-F]+", body[k + 2:k + 2 + width] or "-") \
                    and len(body[k + 2:k + 2 + width]) == width:
                out.append(chr(int(body[k + 2:k + 2 + width], 16)))
            else:
                raise self.error(i, f"unknown escape '\\{e}' in a quoted string")
            k += 2 + width
        return "".join(out)

    def data(self, node):
        """The plain Python value of a node (OPAQUE for what FreeRide does not read)."""
        if node.kind == "map":
            return {k: self.data(e.node) for k, e in node.entries.items()}
        if node.kind == "seq":
            return [self.data(item.node) for item in node.items]
        if node.kind in ("scalar", "flow", "null"):
            return node.value
        return OPAQUE

    def find(self, path):
        """The node at path (map keys and list indexes), or None."""
        node = self.root
        for step in path:
            if isinstance(step, int):
                if node.kind != "seq" or not 0 <= step < len(node.items):
                    return None
                node = node.items[step].node
            else:
                if node.kind != "map" or step not in node.entries:
                    return None
                node = node.entries[step].node
        return node

    def get(self, path, default=None):
        node = self.find(path)
        return default if node is None else self.data(node)

    def secrets(self, pattern):
        """The string values of every key whose name matches pattern (to mask in diffs)."""
        found, todo = set(), [self.root]
        while todo:
            node = todo.pop()
            if node.kind == "map":
                for key, entry in node.entries.items():
                    if re.search(pattern, key) and isinstance(entry.node.value, str):
                        found.add(entry.node.value)
                    todo.append(entry.node)
            elif node.kind == "seq":
                todo.extend(item.node for item in node.items)
        return found

    # -- editing ------------------------------------------------------------------------------
    def _drop_value(self, entry):
        """Rewrite `key: value` as `key:` (keeping a comment), dropping the lines under it."""
        line = self.lines[entry.line]
        rest = line[entry.node.end:] if entry.node.line == entry.line else ""
        comment = rest if rest.strip() else ""
        self._splice(entry.line, entry.node.last - entry.line + 1, [line[:entry.colon] + comment])

    def _container(self, path, kind):
        """Where to add to the mapping (kind "map") or list ("seq") at path, creating it, or
        replacing an empty or single value there: (node or None, line to add after, column)."""
        if not path:
            root = self.root
            if root.kind == kind:
                return root, len(self.lines) - 1, root.col
            if root.kind == "null" or (root.kind == "flow" and not root.value):
                if root.kind == "flow":
                    self._splice(root.line, 1, [])
                return None, len(self.lines) - 1, 0
            raise self.error(root.line, f"the file holds {_WHAT[root.kind]}, not the "
                             f"{_WHAT[kind][2:]} FreeRide expected")
        *above, key = path
        if isinstance(key, int):
            node = self.find(path)
            if node is None or node.kind != kind:
                raise self.error(self.find(tuple(above)).line, "unexpected list item")
            return node, node.last, node.col
        parent, after, col = self._container(tuple(above), "map")
        entry = parent.entries.get(key) if parent is not None else None
        if entry is None:
            self._splice(after + 1, 0, [" " * col + yaml_scalar(key) + ":"])
            return self._container(path, kind)
        node = entry.node
        if node.kind == kind:
            return node, node.last, node.col
        if node.kind == "null":
            step = 0 if kind == "seq" and self.indentless else self.step
            return None, entry.line, parent.col + step
        if node.kind in ("flow", "scalar") and node.value in (None, [], {}):
            self._drop_value(entry)
            return self._container(path, kind)
        if node.kind == "scalar" and kind == "map":
            self._drop_value(entry)  # e.g. Hermes' older `model: name` becomes a `model:` block
            return self._container(path, kind)
        raise self.error(entry.line, f"{key!r} is {_WHAT[node.kind]} here, not the "
                         f"{_WHAT[kind][2:]} FreeRide expected")

    def set(self, path, value):
        """Give the key at path (keys through nested mappings, or list indexes) this value: a
        scalar or a list of scalars. Returns True if the text changed."""
        *above, key = path
        parent, after, col = self._container(tuple(above), "map")
        entry = parent.entries.get(key) if parent is not None else None
        if entry is None:
            self._splice(after + 1, 0, [" " * col + yaml_scalar(key) + ": " + yaml_inline(value)])
            return True
        node = entry.node
        if _same(self.data(node), value):
            return False
        if node.kind in ("block", "text"):
            raise self.error(entry.line, f"{key!r} is a multi-line value; FreeRide does not "
                             "rewrite those")
        line = self.lines[entry.line]
        if node.kind in ("scalar", "flow"):
            self._splice(entry.line, 1, [line[:node.start] + yaml_inline(value) + line[node.end:]])
        else:
            rest = line[entry.colon:]
            comment = rest if rest.strip() else ""
            self._splice(entry.line, node.last - entry.line + 1,
                         [line[:entry.colon] + " " + yaml_inline(value) + comment])
        return True

    def upsert_item(self, path, match, fields, first=False):
        """In the list at path, the mapping whose `match` key equals fields[match] is given
        every field; if there is none, a new one is added (first or last). True if changed."""
        seq, after, dash = self._container(tuple(path), "seq")
        offset = 2
        if seq is not None:
            hits = [k for k, item in enumerate(seq.items) if item.node.kind == "map"
                    and _same(self.get((*path, k, match)), fields[match])]
            if len(hits) > 1:
                raise self.error(seq.items[hits[1]].line, f"two list items have {match}: "
                                 f"{fields[match]}; FreeRide does not know which to change")
            if hits:
                changed = False
                for key, value in fields.items():
                    changed = self.set((*path, hits[0], key), value) or changed
                return changed
            maps = [item for item in seq.items if item.node.kind == "map"]
            if maps:
                offset = maps[0].node.col - seq.col
            after = seq.items[0].line - 1 if first else seq.last
        lines = [" " * (dash + offset) + yaml_scalar(key) + ": " + yaml_inline(value)
                 for key, value in fields.items()]
        lines[0] = " " * dash + "-" + lines[0][dash + 1:]
        self._splice(after + 1, 0, lines)
        return True


def _unique_keys(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError(f"the key {next(k for k in keys if keys.count(k) > 1)!r} appears twice")
    return dict(pairs)


class Spelled:
    """A number read from a JSON config that keeps the text it was written as, to be written
    back the same: json would make 1.10 into 1.1, 1E5 into 100000.0 and 1e400 into Infinity.
    It is still the number: a SpelledInt is an int, a SpelledFloat a float."""

    def __new__(cls, text):
        number = super().__new__(cls, text)
        number.text = text
        return number


class SpelledInt(Spelled, int):
    plain = int


class SpelledFloat(Spelled, float):
    plain = float


def _plain_type(value):
    return value.plain if isinstance(value, Spelled) else type(value)


def _strip_json5(text):
    """text without JSON5's trailing commas; and whether it had // or /* */ comments."""
    out, last, comments, i = [], -1, False, 0
    while i < len(text):
        c = text[i]
        if c in "\"'":
            end = i + 1
            while end < len(text) and text[end] != c:
                end += 2 if text[end] == "\\" else 1
            end = min(end + 1, len(text))
            out.append(text[i:end])
            last, i = len(out) - 1, end
            continue
        if text.startswith("//", i):
            comments, end = True, text.find("\n", i)
            i = len(text) if end < 0 else end
            continue
        if text.startswith("/*", i):
            comments, end = True, text.find("*/", i + 2)
            i = len(text) if end < 0 else end + 2
            continue
        if c in "}]" and last >= 0 and out[last] == ",":
            out[last] = " "
        out.append(c)
        if not c.isspace():
            last = len(out) - 1
        i += 1
    return "".join(out), comments


def read_json_config(text, name):
    """The JSON object in a config file's text ({} for an empty file).

    JSON5's trailing commas are accepted (the rewritten file is plain JSON); a file with
    comments is refused, because rewriting it would lose them.
    """
    body = text.lstrip("\ufeff")
    if not body.strip():
        return {}
    cleaned, comments = _strip_json5(body)
    if comments:
        raise CannotEdit(f"{name} has comments (JSON5); FreeRide rewrites JSON files whole and "
                         "would lose them, so it leaves this one as it is")
    try:
        doc = json.loads(cleaned, object_pairs_hook=_unique_keys, parse_int=SpelledInt,
                         parse_float=SpelledFloat)
    except ValueError as e:
        raise CannotEdit(f"{name} is not JSON FreeRide can read ({e})") from None
    if not isinstance(doc, dict):
        raise CannotEdit(f"{name} holds a JSON {type(doc).__name__}, not an object of settings")
    return doc


def dump_json_config(doc, original):
    """doc as JSON, indented like the original file (two spaces if it gives no hint)."""
    m = re.search(r"^([ \t]+)\S", original, re.M)
    indent = ("\t" if "\t" in m.group(1) else " " * len(m.group(1))) if m else "  "
    text = _json_text(doc, indent) + "\n"
    return text.replace("\n", "\r\n") if "\r\n" in original else text


def _json_text(value, indent, depth=0):
    """value as json.dumps(value, indent=indent, ensure_ascii=False) writes it, except that a
    number read from the file is written as it was spelled there (json.dumps has no hook to
    write a value as raw text). Keys are strings, as in every JSON file."""
    if isinstance(value, Spelled):
        return value.text
    if not isinstance(value, (dict, list)) or not value:
        return json.dumps(value, ensure_ascii=False)
    inner, outer = "\n" + indent * (depth + 1), "\n" + indent * depth
    if isinstance(value, dict):
        items = [json.dumps(key, ensure_ascii=False) + ": " + _json_text(item, indent, depth + 1)
                 for key, item in value.items()]
        return "{" + inner + ("," + inner).join(items) + outer + "}"
    items = [_json_text(item, indent, depth + 1) for item in value]
    return "[" + inner + ("," + inner).join(items) + outer + "]"


def _json_object(parent, key, where):
    """parent[key], a JSON object, created if missing; CannotEdit if it is something else."""
    if parent.get(key) is None:
        parent[key] = {}
    if not isinstance(parent[key], dict):
        raise CannotEdit(f"{where}.{key} is not an object; FreeRide expected one")
    return parent[key]


def json_secrets(doc, pattern):
    found, todo = set(), [doc]
    while todo:
        node = todo.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                if isinstance(value, str) and re.search(pattern, key):
                    found.add(value)
                todo.append(value)
        elif isinstance(node, list):
            todo.extend(node)
    return found


# TOML (Codex's config.toml). Python 3.11's tomllib only reads, and 3.10 has none, so
# TomlDocument reads the whole file (to know where each table starts, past multi-line strings
# and arrays) and rewrites only the lines of the keys it sets.
TOML_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
TOML_TOKEN = re.compile(r"[0-9A-Za-z_+.:-]+")
TOML_ESCAPES = {"b": "\b", "t": "\t", "n": "\n", "f": "\f", "r": "\r", "e": "\x1b", '"': '"',
                "\\": "\\"}
TOML_INT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)|0x[0-9A-Fa-f](_?[0-9A-Fa-f])*"
                      r"|0o[0-7](_?[0-7])*|0b[01](_?[01])*")
TOML_FLOAT = re.compile(r"[+-]?(0|[1-9](_?[0-9])*)(\.[0-9](_?[0-9])*)?([eE][+-]?[0-9](_?[0-9])*)?"
                        r"|[+-]?(inf|nan)")
TOML_DATE = re.compile(r"\d{4}-\d{2}-\d{2}"
                       r"([Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})?)?"
                       r"|\d{2}:\d{2}(:\d{2}(\.\d+)?)?")


def toml_key(key):
    return key if TOML_BARE_KEY.fullmatch(key) else toml_value(key)


def toml_path(path):
    return ".".join(map(toml_key, path))


def toml_value(value):
    """A string, integer or boolean written as TOML (strings as basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    reverse = {v: k for k, v in TOML_ESCAPES.items() if k != "e"}
    return '"' + "".join(
        "\\" + reverse[c] if c in reverse else
        f"\\u{ord(c):04X}" if c < " " or c == "\x7f" else c for c in value) + '"'


class TomlEntry(NamedTuple):
    line: int       # the line of `key =`
    last: int       # the line its value ends on
    start: int      # the value's columns: from start on `line` to end on `last`
    end: int
    table: int      # the index in TomlDocument.tables of the table it is written under
    key: tuple      # its key, a dotted key split into parts
    value: object   # as Python: str, int, float, bool, list, dict (OPAQUE: a date or time)


class TomlTable(NamedTuple):
    line: int       # its header's line (-1: the keys at the top of the file)
    path: tuple
    array: bool     # a [[..]] header: one more table in a list of tables


class TomlDocument(LineEditor):
    """A TOML file as its lines, with just enough structure to set a few keys.

    It reads all of TOML 1.0 (and 1.1's multi-line inline tables and \\e, \\x escapes):
    tables and lists of tables, dotted and quoted keys, every kind of string, numbers,
    booleans, dates (kept, not read), arrays and inline tables, over several lines where TOML
    allows; a key or table defined twice is refused as TOML does. set() writes `key = value`
    under one [table]: in place if the key is there, else after the table's last key, or in a
    new table at the end of the file; update() sets several after checking them all. It
    refuses, with CannotEdit, to guess: a value to
    replace that spans lines or is a multi-line string, and a table that is also given keys
    from elsewhere (dotted keys, an inline table, a list of tables of that name).
    """

    language = "TOML"

    # -- reading ------------------------------------------------------------------------------
    def _parse(self):
        self.tables, self.entries = [TomlTable(-1, (), False)], []
        defined = {}  # full path -> "table", "array", "value" or "dotted" (made by a dotted key)
        i = 0
        while i < len(self.lines):
            p = self._skip(i, 0)
            line = self.lines[i]
            if p < len(line) and line[p] == "[":
                self._header(i, p, defined)
            elif p < len(line) and line[p] != "#":
                i = self._entry(i, p, defined)
            i += 1

    def _skip(self, i, p):
        line = self.lines[i]
        while p < len(line) and line[p] in " \t":
            p += 1
        return p

    def _end_of_line(self, i, p):
        p = self._skip(i, p)
        if p < len(self.lines[i]) and self.lines[i][p] != "#":
            raise self.error(i, f"unexpected text {self.lines[i][p:].strip()[:30]!r}")

    def _header(self, i, p, defined):
        line = self.lines[i]
        array = line.startswith("[[", p)
        path, q = self._key(i, p + (2 if array else 1))
        close = "]]" if array else "]"
        if not line.startswith(close, q):
            raise self.error(i, f"a table header must end with {close}")
        self._end_of_line(i, q + len(close))
        for k in range(1, len(path)):
            if defined.get(path[:k]) == "value":
                raise self.error(i, f"{toml_path(path[:k])} is already a value, not a table")
        kind = defined.get(path)
        if array and kind in (None, "array"):
            for other in [d for d in defined if d[:len(path)] == path and len(d) > len(path)]:
                del defined[other]  # the keys and tables of the list's previous table
        elif kind is not None:
            raise self.error(i, f"[{toml_path(path)}] is defined twice (TOML forbids it)")
        defined[path] = "array" if array else "table"
        self.tables.append(TomlTable(i, path, array))

    def _entry(self, i, p, defined):
        """Read `key = value` at line i; the line its value ends on."""
        key, q = self._key(i, p)
        if not self.lines[i].startswith("=", q):
            raise self.error(i, "expected `key = value`")
        start = self._skip(i, q + 1)
        value, last, end = self._value(i, start)
        self._end_of_line(last, end)
        table = self.tables[-1].path
        full = table + key
        for k in range(len(table) + 1, len(full)):
            kind = defined.get(full[:k])
            if kind == "value":
                raise self.error(i, f"{toml_path(full[:k])} is already a value, not a table")
            if kind in ("table", "array"):
                raise self.error(i, f"{toml_path(full[:k])} is a [table]; a dotted key "
                                 "cannot add to it from elsewhere")
            defined[full[:k]] = "dotted"
        if full in defined:
            raise self.error(i, f"{toml_path(full)} is defined twice (TOML forbids it)")
        defined[full] = "value"
        self.entries.append(TomlEntry(i, last, start, end, len(self.tables) - 1, key, value))
        return last

    def _key(self, i, p):
        """The key (bare, quoted or dotted) at line i, column p, and the column after it."""
        line, parts = self.lines[i], []
        while True:
            p = self._skip(i, p)
            if line.startswith(('"""', "'''"), p):
                raise self.error(i, "a key cannot be a multi-line string")
            if line[p:p + 1] in ('"', "'"):
                part, p = self._string(i, p)
            else:
                m = TOML_BARE_KEY.match(line, p)
                if not m:
                    raise self.error(i, "expected a key")
                part, p = m.group(), m.end()
            parts.append(part)
            p = self._skip(i, p)
            if line[p:p + 1] != ".":
                return tuple(parts), p
            p += 1

    def _value(self, i, p):
        """The value at line i, column p: (value, the line it ends on, the column after it)."""
        line = self.lines[i]
        if line.startswith(('"""', "'''"), p):
            return self._multi_line_string(i, p)
        if line[p:p + 1] in ('"', "'"):
            value, p = self._string(i, p)
            return value, i, p
        if line[p:p + 1] == "[":
            return self._array(i, p)
        if line[p:p + 1] == "{":
            return self._inline_table(i, p)
        m = TOML_TOKEN.match(line, p)
        if not m:
            raise self.error(i, "expected a value")
        end = m.end()
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", m.group()) and re.match(r" \d{2}:", line[end:]):
            end = TOML_TOKEN.match(line, end + 1).end()  # a date and time apart by a space
        token = line[p:end]
        if token in ("true", "false"):
            return token == "true", i, end
        if TOML_INT.fullmatch(token):
            return int(token.replace("_", ""), 0), i, end
        if TOML_FLOAT.fullmatch(token):
            return float(token.replace("_", "")), i, end
        if TOML_DATE.fullmatch(token):
            return OPAQUE, i, end
        raise self.error(i, f"{token!r} is not a TOML value")

    def _escape(self, i, j):
        """The character of the escape at line i, column j, and the column after it."""
        line = self.lines[i]
        c = line[j + 1:j + 2]
        if c in TOML_ESCAPES:
            return TOML_ESCAPES[c], j + 2
        width = {"u": 4, "U": 8, "x": 2}.get(c)
        digits = line[j + 2:j + 2 + width] if width else ""
        if width and re.fullmatch(r"[0-9A-Fa-f]+", digits) and len(digits) == width \
                and (int(digits, 16) < 0xD800 or 0xDFFF < int(digits, 16) <= 0x10FFFF):
            return chr(int(digits, 16)), j + 2 + width
        raise self.error(i, f"unknown escape {line[j:j + 2 + (width or 0)]!r} in a string")

    def _string(self, i, p):
        """A one-line basic ("...") or literal ('...') string: its value and the column after."""
        line, quote = self.lines[i], self.lines[i][p]
        out, j = [], p + 1
        while j < len(line):
            if line[j] == quote:
                return "".join(out), j + 1
            if line[j] == "\\" and quote == '"':
                c, j = self._escape(i, j)
                out.append(c)
                continue
            out.append(line[j])
            j += 1
        raise self.error(i, "a string does not close on its line")

    def _multi_line_string(self, i, p):
        first, quote = i, self.lines[i][p]
        delim = quote * 3
        out, j, trimming = [], p + 3, False
        if j == len(self.lines[i]):  # a newline right after the opening quotes is not kept
            i, j = i + 1, 0
        while i < len(self.lines):
            line = self.lines[i]
            while j < len(line):
                if trimming and line[j] in " \t":
                    j += 1
                    continue
                trimming = False
                if line.startswith(delim, j):
                    k = j + 3
                    while k < j + 5 and line[k:k + 1] == quote:  # up to two quotes end the text
                        k += 1
                    out.append(quote * (k - j - 3))
                    return "".join(out), i, k
                if line[j] == "\\" and quote == '"':
                    if not line[j + 1:].strip(" \t"):  # a line-ending backslash
                        trimming = True
                        break
                    c, j = self._escape(i, j)
                    out.append(c)
                    continue
                out.append(line[j])
                j += 1
            if not trimming:
                out.append(self.ends[i].replace("\r\n", "\n"))
            i, j = i + 1, 0
        raise self.error(first, "a multi-line string does not close")

    def _gap(self, i, p, first):
        """The next line and column, past spaces, comments and line ends, inside [..] or {..}."""
        while i < len(self.lines):
            p = self._skip(i, p)
            if p < len(self.lines[i]) and self.lines[i][p] != "#":
                return i, p
            i, p = i + 1, 0
        raise self.error(first, "an array or inline table does not close")

    def _array(self, i, p):
        first, items, p = i, [], p + 1
        while True:
            i, p = self._gap(i, p, first)
            if self.lines[i][p] == "]":
                return items, i, p + 1
            value, i, p = self._value(i, p)
            items.append(value)
            i, p = self._gap(i, p, first)
            if self.lines[i][p] == ",":
                p += 1
            elif self.lines[i][p] != "]":
                raise self.error(i, "expected ',' or ']' in an array")

    def _inline_table(self, i, p):
        first, table, p = i, {}, p + 1
        while True:
            i, p = self._gap(i, p, first)
            if self.lines[i][p] == "}":
                return table, i, p + 1
            key, p = self._key(i, p)
            if not self.lines[i].startswith("=", p):
                raise self.error(i, "expected `key = value` in an inline table")
            value, i, p = self._value(i, self._skip(i, p + 1))
            node = table
            for part in key[:-1]:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise self.error(i, f"{toml_path(key)} is defined twice in an inline table")
            if key[-1] in node:
                raise self.error(i, f"{toml_path(key)} is defined twice in an inline table")
            node[key[-1]] = value
            i, p = self._gap(i, p, first)
            if self.lines[i][p] == ",":
                p += 1
            elif self.lines[i][p] != "}":
                raise self.error(i, "expected ',' or '}' in an inline table")

    def data(self):
        """The whole file as Python values, as a TOML loader reads it (dates are OPAQUE)."""
        root, nodes = {}, []
        for table in self.tables:
            node = root
            for k, part in enumerate(table.path):
                if table.array and k == len(table.path) - 1:
                    node = node.setdefault(part, [])
                    node.append({})
                    node = node[-1]
                else:
                    node = node.setdefault(part, {})
                    if isinstance(node, list):  # a table in the list's last table
                        node = node[-1]
            nodes.append(node)
        for entry in self.entries:
            node = nodes[entry.table]
            for part in entry.key[:-1]:
                node = node.setdefault(part, {})
            node[entry.key[-1]] = entry.value
        return root

    def get(self, path, default=None):
        node = self.data()
        for step in path:
            if not isinstance(node, dict) or step not in node:
                return default
            node = node[step]
        return node

    def secrets(self, pattern):
        return json_secrets(self.data(), pattern)

    # -- editing ------------------------------------------------------------------------------
    def update(self, settings):
        """Set {table: {key: value}}; every key is checked before the first line changes, so
        a refusal names the line as it is in the file."""
        for table, values in settings.items():
            for key in values:
                self._entry_to_set(table, key)
        for table, values in settings.items():
            for key, value in values.items():
                self.set(table, key, value)

    def _entry_to_set(self, table, key):
        """(the index of [table] or None, the entry of `key` in it or None); CannotEdit when
        set() cannot write the key without guessing."""
        self._check_alone(table, table + (key,))
        section = next((k for k, t in enumerate(self.tables) if t.path == table and not t.array),
                       None)
        entry = next((e for e in self.entries if e.table == section and e.key == (key,)), None)
        if entry is not None and (entry.last != entry.line or self.lines[entry.line].startswith(
                ('"""', "'''"), entry.start)):
            raise self.error(entry.line, f"{toml_path(table + (key,))} is written as a "
                             "multi-line value, which FreeRide does not rewrite")
        return section, entry

    def set(self, table, key, value):
        """Set `key = value` under [table] (() for the top of the file)."""
        section, entry = self._entry_to_set(table, key)
        written = f"{toml_key(key)} = {toml_value(value)}"
        if entry is not None:
            if _same(entry.value, value):
                return
            line = self.lines[entry.line]
            self._splice(entry.line, 1, [line[:entry.start] + toml_value(value)
                                         + line[entry.end:]])
        elif section is not None:
            at, new = self._after_keys(section), [written]
            if section == 0 and not self.entries_of(0) and at < len(self.lines) \
                    and self.lines[at].strip():
                new.append("")  # the new keys at the top, apart from the first table
            self._splice(at, 0, new)
        else:
            new = [f"[{toml_path(table)}]", written]
            if self.lines and self.lines[-1].strip():
                new.insert(0, "")
            self._splice(len(self.lines), 0, new)

    def entries_of(self, section):
        return [e for e in self.entries if e.table == section]

    def _after_keys(self, section):
        """Where a new key of a table goes: after its last key (or its header); at the top of
        the file, before the first table and the comments right above it."""
        entries = self.entries_of(section)
        if entries:
            return entries[-1].last + 1
        if section:
            return self.tables[section].line + 1
        i = self.tables[1].line if len(self.tables) > 1 else len(self.lines)
        while i > 0 and self.lines[i - 1].lstrip().startswith("#"):
            i -= 1
        return i

    def _check_alone(self, table, full):
        """CannotEdit unless [table] and its key `full` are defined only where set() writes:
        as `key = ...` lines under the table's own header (or at the top)."""
        for t in self.tables[1:]:
            if t.array and t.path == table[:len(t.path)]:
                raise self.error(t.line, f"[[{toml_path(t.path)}]] is a list of tables; FreeRide "
                                 f"will not guess where [{toml_path(table)}] belongs")
            if t.path[:len(full)] == full:
                raise self.error(t.line, f"[{toml_path(t.path)}] makes {toml_path(full)} a "
                                 "table; FreeRide will not guess")
        for e in self.entries:
            where = self.tables[e.table].path
            path = where + e.key
            if where == table and len(e.key) == 1:
                continue
            if path[:len(full)] == full or full[:len(path)] == path or \
                    (table and path[:len(table)] == table and where[:len(table)] != table):
                raise self.error(e.line, f"{toml_path(path)} is set here with a dotted key or "
                                 f"an inline table; FreeRide writes {toml_path(full)} only "
                                 f"under [{toml_path(table)}] and will not guess, so edit "
                                 "it by hand")

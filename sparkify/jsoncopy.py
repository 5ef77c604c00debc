"""The PostgreSQL equivalent of Redshift's `COPY … FORMAT AS JSON`.

PostgreSQL cannot read JSON files into columns, so the toolkit does what Redshift's COPY
does and streams the result through `COPY … FROM STDIN`:

* a file is a sequence of JSON values separated by whitespace: usually one per line, but
  several on a line or one spread over many lines load too;
* with a JSONPaths file, path i fills column i (positional); with 'auto', a column takes the
  key of the same name (case-sensitive; 'auto ignorecase' folds case); missing is NULL;
* a value is converted to its column's type: numbers become text in character columns,
  numeric strings become numbers, objects and arrays become JSON text; EMPTYASNULL,
  BLANKSASNULL, TRUNCATECOLUMNS and ACCEPTINVCHARS behave as Redshift's options do;
  VARCHAR lengths are counted in bytes, as Redshift counts them;
* besides the column types, a table may have rules for the values the transforms convert
  (sparkify/validvalues.py: a userId in plain digits, a ts within its range): a value that
  breaks one rejects its record as a value of the wrong type would;
* a record that cannot be loaded is rejected with its file, line, column and reason;
  MAXERROR rejections or more fail the load (0 and 1: the first). A value spread over many
  lines is one record whatever it holds: nested too deeply, it is one rejection, not one per
  line;
* a JSON value over 4 MB, on one line or many, fails the whole load, as it fails Redshift's
  COPY (it is not a rejection MAXERROR counts);
* a source object that cannot be read (a broken or looping link, no permission, a named
  pipe) is one rejection with the reason, and the objects after it load.
"""

from __future__ import annotations

import codecs
import json
import math
import re
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from typing import TYPE_CHECKING

import orjson

from .drift import ObjectShape, ShapePool
from .loads import (
    REJECTED,
    REPLACED,
    CopyOptions,
    CopyResult,
    LoadError,
    ObjectTooLarge,
    TooManyErrors,
    rejections_that_fail,
)
from .sources import SourceObject, UnreadableObject

if TYPE_CHECKING:
    from .validvalues import ValueRule

NULL = "\\N"
# AWS, Redshift Database Developer Guide, "Data format parameters" (copy-parameters-data-format),
# JSON: "The maximum size of a single JSON object or array, including braces or brackets, is
# 4 MB. ... If the maximum size of a single JSON object or array is exceeded ... the COPY
# command fails." So an object over it fails the load, whatever MAXERROR says.
MAX_OBJECT_BYTES = 4 * 1024 * 1024
EXCERPT_CHARS = 300
BOM = b"\xef\xbb\xbf"
# Python's JSON reader, which reads what orjson cannot (several values on a line, a value
# over several lines), stops at about a thousand levels; orjson at 1,024.
TOO_DEEP = "JSON nested too deeply (arrays and objects about 1,000 levels deep or more); fix the record"
# orjson writes at most 254 levels; a deeper value cannot become a column's JSON text.
TOO_DEEP_FOR_TEXT = "a value nested too deeply to store as JSON text (more than 254 levels)"

_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
_INTEGER = re.compile(r"[+-]?\d+")
_INT_RANGES = {"smallint": 2**15, "integer": 2**31, "bigint": 2**63}


def _question_mark(error: UnicodeDecodeError):
    # ACCEPTINVCHARS: each invalid UTF-8 sequence becomes '?', Redshift's default.
    return ("?", error.end)


codecs.register_error("sparkify-accept-inv-chars", _question_mark)  # type: ignore[arg-type]


class RecordError(ValueError):
    """Why one record (or one value of it) cannot be loaded."""

    def __init__(self, reason: str, column: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.column = column


class TooLarge(RecordError):
    """A JSON value over Redshift's 4 MB limit: not one bad record, a load that fails."""


# --- JSONPaths ---------------------------------------------------------------------------

_PATH_STEP = re.compile(
    r"""\[\s*'((?:[^'\\]|\\.)*)'\s*\]"""     # $['key']
    r"""|\[\s*"((?:[^"\\]|\\.)*)"\s*\]"""    # $["key"]
    r"""|\[\s*(\d+)\s*\]"""                  # $[0]
    r"""|\.([A-Za-z_$][\w$]*)"""              # $.key
)


def parse_jsonpaths(document: bytes) -> list[tuple]:
    """The steps of each path in a JSONPaths file: keys (str) and array indexes (int)."""
    try:
        parsed = orjson.loads(document.lstrip(BOM))
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"the JSONPaths file is not valid JSON ({exc})") from None
    paths = parsed.get("jsonpaths") if isinstance(parsed, dict) else None
    if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
        raise ValueError('the JSONPaths file needs {"jsonpaths": ["$[\'key\']", ...]}')
    return [_parse_path(p) for p in paths]


def _parse_path(path: str) -> tuple:
    text = path.strip()
    if not text.startswith("$"):
        raise ValueError(f"JSONPath {path!r} must start with $")
    steps: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _PATH_STEP.match(text, pos)
        if not match:
            raise ValueError(f"JSONPath {path!r} is not a supported path (use $['key'] or $.key)")
        quoted1, quoted2, index, dotted = match.groups()
        if index is not None:
            steps.append(int(index))
        else:
            steps.append(dotted if dotted is not None else (quoted1 if quoted1 is not None else quoted2))
        pos = match.end()
    if not steps:
        raise ValueError(f"JSONPath {path!r} selects the whole record; name a field")
    return tuple(steps)


def _extractor(steps: tuple) -> Callable[[object], object]:
    if len(steps) == 1 and isinstance(steps[0], str):
        key = steps[0]

        def single(record):
            return record.get(key) if type(record) is dict else None
        return single

    def nested(record):
        value = record
        for step in steps:
            if isinstance(step, str):
                if type(value) is not dict:
                    return None
                value = value.get(step)
            else:
                if type(value) is not list or step >= len(value):
                    return None
                value = value[step]
        return value
    return nested


# --- reading JSON records ------------------------------------------------------------------

def _reject_constant(name):
    raise ValueError(f"{name} is not valid JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _decode_all(text: str) -> list:
    """Every JSON value in text, separated by whitespace; raises JSONDecodeError."""
    values: list = []
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return values
        value, pos = _DECODER.raw_decode(text, pos)
        values.append(value)


def _parse(text: str, closed: bool) -> tuple[list, Exception | None]:
    """Every JSON value in text, or the error that stops it (orjson first when the brackets
    say a value closed: one value, read at its speed)."""
    if closed:
        try:
            return [orjson.loads(text)], None
        except orjson.JSONDecodeError:
            pass
    try:
        return _decode_all(text), None
    except (json.JSONDecodeError, ValueError, RecursionError) as exc:
        return [], exc


def _incomplete(exc: json.JSONDecodeError, text: str) -> bool:
    """True when text may be the start of a value that continues on the next line."""
    return exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")


_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')


def _depth_change(raw: bytes) -> int:
    """How many more arrays and objects a line opens than it closes, strings left out.

    Counted on the bytes: no byte of a multi-byte UTF-8 character is ASCII, so this holds
    for any encoding-valid line (a malformed one is caught when the text is parsed).
    """
    if b'"' in raw:
        raw = _JSON_STRING.sub(b"", raw)
    return raw.count(b"{") + raw.count(b"[") - raw.count(b"}") - raw.count(b"]")


def _excerpt(raw: bytes | str) -> str:
    if isinstance(raw, bytes):
        raw = raw.decode("utf-8", "replace")
    raw = raw.replace("\x00", "\\0")
    return raw[:EXCERPT_CHARS]


def _oversized(first: int, last: int, ends_inside: bool) -> TooLarge:
    where = (f"line {first:,}" if first == last else f"lines {first:,}-{last:,}") \
        + (", and the file ends inside it" if ends_inside else "")
    return TooLarge(f"a JSON value larger than {MAX_OBJECT_BYTES // (1024 * 1024)} MB, Redshift's limit "
                    f"for one object ({where}); split it into smaller records")


def _largest_value_bytes(text: str) -> int:
    """The size in UTF-8 bytes of the largest of the JSON values in text (several on a line)."""
    largest, pos, end = 0, 0, len(text)
    while True:
        while pos < end and text[pos] in " \t\r\n":
            pos += 1
        if pos >= end:
            return largest
        start = pos
        _, pos = _DECODER.raw_decode(text, pos)
        largest = max(largest, len(text[start:pos].encode("utf-8", "surrogatepass")))


def iter_records(lines: Iterable[bytes], accept_invalid_chars: bool = True
                 ) -> Iterator[tuple[int, object, bytes, bool]]:
    """(line number, value or RecordError, raw text, invalid UTF-8 replaced) per JSON value."""
    numbered = enumerate(lines, 1)
    pushed_back: deque = deque()
    replaced = False

    def next_line():
        if pushed_back:
            return pushed_back.popleft()
        return next(numbered, None)

    def skip_rest(depth: int, last: int) -> tuple[int, bool]:
        """Reads past the rest of a value that is rejected whole (its lines are its own, not
        records to read again); returns its last line number and whether the file ended
        inside it."""
        while depth > 0:
            following = next_line()
            if following is None:
                return last, True
            last = following[0]
            depth += _depth_change(following[1])
        return last, False

    def decode(raw: bytes) -> str | RecordError:
        nonlocal replaced
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            if accept_invalid_chars:
                replaced = True
                return raw.decode("utf-8", "sparkify-accept-inv-chars")
            return RecordError(f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte {exc.start + 1}; "
                               "set ACCEPTINVCHARS to load it with '?'")

    while True:
        item = next_line()
        if item is None:
            return
        number, raw = item
        if number == 1 and raw.startswith(BOM):
            raw = raw[len(BOM):]
        stripped = raw.strip()
        if not stripped:
            continue
        replaced = False
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
        else:
            # One value on the line (orjson reads exactly one): the line is its size.
            yield number, (value if len(stripped) <= MAX_OBJECT_BYTES else _oversized(number, number, False)), \
                stripped, False
            continue
        text = decode(stripped)
        if isinstance(text, RecordError):
            yield number, text, stripped, False
            continue
        try:
            values = _decode_all(text)
        except RecursionError:
            skip_rest(_depth_change(stripped), number)
            yield number, RecordError(TOO_DEEP), stripped, False
            continue
        except (json.JSONDecodeError, ValueError) as exc:
            if not isinstance(exc, json.JSONDecodeError) or not _incomplete(exc, text):
                yield number, RecordError(f"invalid JSON: {_json_reason(exc)}"), stripped, False
                continue
        else:
            if len(stripped) > MAX_OBJECT_BYTES and _largest_value_bytes(text) > MAX_OBJECT_BYTES:
                yield number, _oversized(number, number, False), stripped, False
                continue
            for value in values:
                yield number, value, stripped, replaced
            continue

        # A value spread over several lines (pretty-printed JSON): read on until it is whole.
        # It is parsed when its brackets close, and whenever it has doubled since the last
        # parse (so an error shows within a few lines): every byte is parsed a bounded
        # number of times, where parsing after each line took time quadratic in its lines.
        parts, consumed, size = [text], [], len(stripped)
        depth, parse_at = _depth_change(stripped), 2 * len(stripped)
        while True:
            following = next_line()
            if following is not None:
                consumed.append(following)
                more = decode(following[1].rstrip(b"\r\n"))
                if isinstance(more, RecordError):
                    yield number, more, stripped, False
                    pushed_back.extendleft(reversed(consumed))
                    break
                parts.append(more)
                size += len(following[1])
                depth += _depth_change(following[1])
                if depth > 0 and size < parse_at and size <= MAX_OBJECT_BYTES:
                    continue
                parse_at = 2 * size
            joined = "\n".join(parts)
            values, error = _parse(joined, closed=depth <= 0)
            last = consumed[-1][0] if consumed else number
            if isinstance(error, RecursionError):
                skip_rest(depth, last)
                yield number, RecordError(TOO_DEEP), stripped, False
                break
            if error is not None:
                unfinished = isinstance(error, json.JSONDecodeError) and _incomplete(error, joined)
                if unfinished and size > MAX_OBJECT_BYTES:
                    # Well-formed so far and too big: the rest of its lines are part of it.
                    last, ends_inside = skip_rest(depth, last)
                    yield number, _oversized(number, last, ends_inside or following is None), stripped, False
                    break
                if unfinished and following is not None:
                    continue
                reason = ("invalid JSON: the file ends inside this value (truncated?)" if unfinished
                          else f"invalid JSON: {_json_reason(error)}")
                yield number, RecordError(reason), stripped, False
                # The lines read ahead may hold good records of their own: read them again.
                pushed_back.extendleft(reversed(consumed))
                break
            if size > MAX_OBJECT_BYTES:
                yield number, _oversized(number, last, False), stripped, False
                break
            for value in values:
                yield number, value, joined.encode("utf-8", "replace"), replaced
            break


def _json_reason(exc: Exception) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at character {exc.pos + 1}"
    return str(exc)


# --- converting values to COPY text ---------------------------------------------------------

def _number_text(value) -> str:
    if type(value) is float:
        if not math.isfinite(value):
            raise RecordError(f"{value} is not a finite number")
        return repr(value)
    return str(value)


def _text_converter(name: str, max_bytes: int | None, options: CopyOptions, rule: ValueRule | None = None):
    empty_as_null, blanks_as_null = options.empty_as_null, options.blanks_as_null
    truncate = options.truncate_columns

    def convert(value):
        if value is None:
            return NULL
        kind = type(value)
        if kind is str:
            text = value
        elif kind is bool:
            text = "true" if value else "false"
        elif kind is int or kind is float:
            text = _number_text(value)
        else:
            try:
                text = orjson.dumps(value).decode("utf-8")
            except orjson.JSONEncodeError:
                raise RecordError(TOO_DEEP_FOR_TEXT, name) from None
        if not text:
            return NULL if empty_as_null else ""
        if blanks_as_null and text.isspace():
            return NULL
        if "\x00" in text:
            # As Redshift's COPY without NULL AS '\0': a record with a NUL fails. ACCEPTINVCHARS
            # does not apply, it replaces invalid UTF-8 and U+0000 is valid.
            raise RecordError("contains a NUL character (U+0000), which Redshift's COPY rejects too; "
                              "remove it from the source file", name)
        if max_bytes is not None and len(text) * 4 > max_bytes:
            encoded = text.encode("utf-8", "surrogatepass")
            if len(encoded) > max_bytes:
                if not truncate:
                    raise RecordError(
                        f"{len(encoded)} bytes exceed the column's {max_bytes} "
                        "(set TRUNCATECOLUMNS to cut them)", name)
                text = encoded[:max_bytes].decode("utf-8", "ignore")
        if rule is not None and not rule.accepts(text):
            raise RecordError(rule.reason(text), name)
        return text.translate(_ESCAPES)
    return convert


def _integer_converter(name: str, bound: int, options: CopyOptions, rule: ValueRule | None = None):
    empty_as_null = options.empty_as_null or options.blanks_as_null

    def convert(value):
        if value is None:
            return NULL
        kind = type(value)
        if kind is int:
            number = value
        elif kind is str:
            text = value.strip()
            if not text and empty_as_null:
                return NULL
            if not _INTEGER.fullmatch(text):
                raise RecordError(f"{_show(value)} is not a whole number", name)
            number = int(text)
        else:
            raise RecordError(f"{_show(value)} is not a whole number", name)
        if not -bound <= number < bound:
            raise RecordError(f"{number} is out of range for the column", name)
        if rule is not None and not rule.accepts(number):
            raise RecordError(rule.reason(number), name)
        return str(number)
    return convert


def _float_converter(name: str, options: CopyOptions, rule: ValueRule | None = None):
    empty_as_null = options.empty_as_null or options.blanks_as_null

    def convert(value):
        if value is None:
            return NULL
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                raise RecordError(f"{value} is not a finite number", name)
            number = value
        elif kind is int:
            number = float(value)
        elif kind is str:
            text = value.strip()
            if not text and empty_as_null:
                return NULL
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if not math.isfinite(number):
                raise RecordError(f"{_show(value)} is not a number", name)
        else:
            raise RecordError(f"{_show(value)} is not a number", name)
        if rule is not None and not rule.accepts(number):
            raise RecordError(rule.reason(number), name)
        return repr(number)
    return convert


def _boolean_converter(name: str):
    truth = {"true": "t", "t": "t", "1": "t", "false": "f", "f": "f", "0": "f"}

    def convert(value):
        if value is None:
            return NULL
        if type(value) is bool:
            return "t" if value else "f"
        text = str(value).strip().lower()
        if text in truth:
            return truth[text]
        raise RecordError(f"{_show(value)} is not a boolean", name)
    return convert


def _show(value) -> str:
    try:
        text = orjson.dumps(value).decode("utf-8") if not isinstance(value, str) else json.dumps(value)
    except orjson.JSONEncodeError:
        return "a deeply nested value"
    return text if len(text) <= 60 else text[:57] + "..."


def column_converter(name: str, data_type: str, max_length: int | None, options: CopyOptions,
                     nullable: bool = True, rule: ValueRule | None = None):
    """The function that turns a JSON value into COPY text for one column (checking the
    column's rule, if it has one, on every value that is not NULL)."""
    if data_type in ("character varying", "character", "text"):
        convert = _text_converter(name, max_length, options, rule)
    elif data_type in _INT_RANGES:
        convert = _integer_converter(name, _INT_RANGES[data_type], options, rule)
    elif data_type in ("double precision", "real"):
        convert = _float_converter(name, options, rule)
    elif rule is not None:
        raise ValueError(f"column {name} has type {data_type}, which takes no value rule")
    elif data_type == "boolean":
        convert = _boolean_converter(name)
    else:
        raise ValueError(f"column {name} has type {data_type}, which the local COPY does not load")
    if nullable:
        return convert

    def required(value):
        text = convert(value)
        if text is NULL:
            raise RecordError("missing required field (the column is NOT NULL)", name)
        return text
    return required


# --- the COPY ---------------------------------------------------------------------------------

class JsonCopy:
    """Turns JSON source objects into COPY text rows for one table."""

    def __init__(self, table: str, columns: list[tuple[str, str, int | None, bool]],
                 mapping: str | list[tuple], options: CopyOptions, record_name: str = "record",
                 rules: dict[str, ValueRule] | None = None, object_ids: dict[str, int] | None = None):
        self.table = table
        # Each object's id (by URL), written after each of its rows' columns: the table's
        # last column, which no JSON key fills (the rows' lineage). None: no such column.
        self.object_ids = object_ids
        self.options = options
        self.record_name = record_name  # what one record is, for the reasons: "song", "event"
        # A top-level array is a record only to JSONPaths that index it ($[0]); to keys it is
        # a mistake: a file holding an array of records instead of one object per record.
        self.reads_arrays = not isinstance(mapping, str) and any(isinstance(steps[0], int) for steps in mapping)
        names = [column[0] for column in columns]
        if isinstance(mapping, str):
            if mapping == "auto":
                self.extractors = [_extractor((name,)) for name in names]
            elif mapping == "auto ignorecase":
                self.extractors = [_ignorecase_extractor(name) for name in names]
            else:
                raise ValueError(f"unknown JSON mapping {mapping!r}; use 'auto' or a JSONPaths file")
        else:
            if len(mapping) != len(names):
                raise ValueError(
                    f"the JSONPaths file has {len(mapping)} paths but {table} has {len(names)} "
                    "columns; they must match one to one")
            self.extractors = [_extractor(steps) for steps in mapping]
        self.columns = names
        rules = rules or {}
        unknown = set(rules) - set(names)
        if unknown:
            raise ValueError(f"{table} has no column {', '.join(sorted(unknown))} for a value rule")
        column_rules = [rules.get(name) for name in names]
        self.converters = [column_converter(name, data_type, length, options, nullable, rule)
                           for (name, data_type, length, nullable), rule in zip(columns, column_rules, strict=True)]
        keys = ([name for name in names] if mapping == "auto" else
                [steps[0] for steps in mapping] if not isinstance(mapping, str)
                and all(len(steps) == 1 and isinstance(steps[0], str) for steps in mapping) else None)
        self.fast_row = _fast_row(keys, columns, self.converters, options, column_rules) if keys else None
        self.result = CopyResult(table, checked_rules=frozenset(rules), declared_keys=declared_keys(mapping, names))
        self.shape_pool = ShapePool()  # the layouts and first examples the objects' shapes share

    def rows(self, objects: Iterable[SourceObject]) -> Generator[bytes, None, None]:
        """COPY text, one encoded line per loadable record; rejects go to self.result."""
        pairs = list(zip(self.extractors, self.converters, strict=True))
        fast_row = self.fast_row
        accept_invalid = self.options.accept_invalid_chars
        for obj in objects:
            self.result.objects += 1
            ending = "\n" if self.object_ids is None else f"\t{self.object_ids[obj.url]}\n"
            loaded = 0
            # Every bad record is one rejection, as Redshift's COPY counts them toward
            # MAXERROR: a file with no good record at all (an image, a README dropped in the
            # prefix) is as many rejections as it has records, and fails a load at MAXERROR.
            rejected = 0
            try:
                handle = obj.open()
            except UnreadableObject as exc:
                self.result.unread.add(obj.url)
                self.result.per_object[obj.url] = (0, self._keep([LoadError(
                    REJECTED, self.table, obj.url, None, None, str(exc), "")]))
                continue
            # The keys and types of every record, for schema drift (drift.py): a dict
            # look-up per record whose layout was seen before.
            shape = self.result.shapes[obj.url] = ObjectShape(self.shape_pool)
            observe = shape.observe
            result = self.result
            read_before = result.bytes_read
            with handle:
                for number, record, raw, replaced in iter_records(handle, accept_invalid):
                    result.bytes_read += len(raw) + 1  # about: the object's size is set at its end
                    if isinstance(record, RecordError):
                        if isinstance(record, TooLarge):
                            raise ObjectTooLarge(self.table, self._error(obj, number, record, raw),
                                                 self.result.errors)
                        rejected += self._keep([self._error(obj, number, record, raw)])
                        continue
                    if type(record) is dict:
                        observe(number, record)
                    elif type(record) is not list or not self.reads_arrays:
                        rejected += self._keep([self._error(obj, number, self._not_an_object(record), raw)])
                        continue
                    try:
                        if fast_row is not None and type(record) is dict:
                            line = fast_row(record)
                        else:
                            line = "\t".join([convert(extract(record)) for extract, convert in pairs])
                        encoded = (line + ending).encode("utf-8")
                    except RecordError as exc:
                        rejected += self._keep([self._error(obj, number, exc, raw)])
                        continue
                    except UnicodeEncodeError:
                        if not accept_invalid:
                            rejected += self._keep([self._error(obj, number, RecordError(
                                "invalid Unicode (a lone surrogate escape); set ACCEPTINVCHARS"), raw)])
                            continue
                        replaced = True
                        encoded = (line + ending).encode("utf-8", "sparkify-accept-inv-chars")
                    if replaced:
                        self._keep([self._error(obj, number, RecordError(
                            "invalid UTF-8 replaced with '?'"), raw, REPLACED)])
                    loaded += 1
                    self.result.rows += 1
                    yield encoded
            self.result.per_object[obj.url] = (loaded, rejected)
            result.bytes_read = read_before + obj.size
            shape.finish()

    def _not_an_object(self, record) -> RecordError:
        if type(record) is list:
            return RecordError(f"a JSON array, not an object: the file must hold one JSON object per "
                               f"{self.record_name}, one after another, not an array of them")
        return RecordError(f"a JSON object was expected, found {type(record).__name__}")

    def _error(self, obj: SourceObject, number: int, error: RecordError, raw,
               disposition: str = REJECTED) -> LoadError:
        reason = f"{error.column}: {error.reason}" if error.column else error.reason
        return LoadError(disposition, self.table, obj.url, number, error.column, reason, _excerpt(raw))

    def _keep(self, errors: list[LoadError]) -> int:
        """Records errors; returns how many were rejections. Fails at MAXERROR, as Redshift does."""
        self.result.errors.extend(errors)
        rejections = sum(1 for e in errors if e.disposition == REJECTED)
        self.result.rejected_count += rejections
        if rejections and self.result.rejected_count >= rejections_that_fail(self.options.max_errors):
            raise TooManyErrors(self.table, self.result.errors, self.options.max_errors)
        return rejections


def declared_keys(mapping: str | list[tuple], columns: list[str]) -> tuple[str, ...]:
    """The top-level keys a mapping reads: a JSONPaths file's first steps, or the columns
    'auto' fills."""
    if isinstance(mapping, str):
        return tuple(columns)
    return tuple(dict.fromkeys(steps[0] for steps in mapping if isinstance(steps[0], str)))


def _fast_row(keys: list[str], columns, converters, options: CopyOptions, rules: list):
    """A row function specialised for records whose fields are all top-level keys.

    The generic path calls an extractor and a converter per value; this one is generated
    code that handles the common values inline (a clean string that fits, an int, a float)
    and hands anything else to the same converters, so results and errors are identical.
    A column's value rule narrows what passes inline: a number within the rule's bounds, a
    string the rule accepts. It makes staging several times faster, which is what bounds a
    local load.
    """
    lines = ["def row(r):"]
    names = {"NULL": NULL, "_math_isfinite": math.isfinite, "_BS": "\\"}
    for i, ((_name, data_type, max_length, _nullable), key, rule) in enumerate(
            zip(columns, keys, rules, strict=True)):
        names[f"conv{i}"] = converters[i]
        lines.append(f"    v = r.get({key!r})")
        if data_type in ("character varying", "character", "text"):
            limit = f" and len(v) * 4 <= {max_length}" if max_length else ""
            blank = " and not v.isspace()" if options.blanks_as_null else ""
            accepted = ""
            if rule is not None:
                names[f"accepts{i}"] = rule.accepts
                accepted = f" and accepts{i}(v)"
            lines.append(f"    c{i} = v if type(v) is str and v and v.isprintable() and _BS not in v"
                         f"{limit}{blank}{accepted} else conv{i}(v)")
        elif rule is not None and rule.low is None:  # a rule without bounds: every value to it
            lines.append(f"    c{i} = conv{i}(v)")
        elif data_type in _INT_RANGES:
            bound = _INT_RANGES[data_type]
            low, high = -bound, bound - 1
            if rule is not None:
                low, high = max(low, rule.low), min(high, rule.high)
            lines.append(f"    c{i} = str(v) if type(v) is int and {low} <= v <= {high} else conv{i}(v)")
        elif data_type in ("double precision", "real"):
            # Finite bounds also keep out inf and nan, as _math_isfinite does.
            inline = f"{rule.low!r} <= v <= {rule.high!r}" if rule is not None else "_math_isfinite(v)"
            lines.append(f"    c{i} = repr(v) if type(v) is float and {inline} else conv{i}(v)")
        else:
            lines.append(f"    c{i} = conv{i}(v)")
    lines.append("    return '\t'.join((" + "".join(f"c{i}, " for i in range(len(keys))) + "))")
    exec("\n".join(lines), names)  # noqa: S102 - our own generated code, from column metadata
    return names["row"]


def _ignorecase_extractor(name: str):
    lowered = name.lower()

    def extract(record):
        if type(record) is not dict:
            return None
        if lowered in record:
            return record[lowered]
        for key, value in record.items():
            if key.lower() == lowered:
                return value
        return None
    return extract


class ChunkedReader:
    """A read()-able file over an iterator of byte strings, for psycopg2's copy_expert."""

    def __init__(self, chunks: Iterator[bytes], target: int = 1 << 20):
        self._chunks = chunks
        self._target = target
        self._buffer = bytearray()
        self._done = False
        # psycopg2 turns an exception raised in read() into a generic COPY error (and aborts
        # the COPY); the original is kept here so the caller can raise it instead.
        self.error: BaseException | None = None

    def read(self, size: int = -1) -> bytes:
        want = self._target if size is None or size < 0 else size
        while not self._done and len(self._buffer) < want:
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._done = True
            except BaseException as exc:
                self.error = exc
                raise
        data = bytes(self._buffer[:want])
        del self._buffer[:want]
        return data


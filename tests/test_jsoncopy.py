"""The local COPY's tricky parts: reading JSON records and converting values like Redshift."""

from __future__ import annotations

import io

import pytest

from sparkify import jsoncopy
from sparkify.jsoncopy import NULL, RecordError, column_converter, iter_records, parse_jsonpaths
from sparkify.loads import CopyOptions


def records(text: bytes, accept_invalid_chars: bool = True):
    out = []
    for number, value, _raw, _replaced in iter_records(io.BytesIO(text), accept_invalid_chars):
        out.append((number, value.reason if isinstance(value, RecordError) else value))
    return out


def test_json_lines_with_blank_lines_crlf_and_bom():
    text = b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n   \n{"a": 3}'
    assert records(text) == [(1, {"a": 1}), (3, {"a": 2}), (5, {"a": 3})]


def test_empty_file_has_no_records():
    assert records(b"") == []
    assert records(b"\n\n") == []


def test_several_objects_on_one_line_and_one_object_on_several_lines():
    text = b'{"a": 1} {"a": 2}\n{\n    "a": 3,\n    "b": [1,\n 2]\n}\n{"a": 4}'
    assert records(text) == [(1, {"a": 1}), (1, {"a": 2}), (2, {"a": 3, "b": [1, 2]}), (7, {"a": 4})]


def test_a_truncated_line_is_rejected_and_the_next_record_still_loads():
    text = b'{"a": 1}\n{"a": "trunc\n{"a": 3}\n{"a": 4, "b"\n{"a": 5}'
    out = records(text)
    assert [n for n, v in out if isinstance(v, dict)] == [1, 3, 5]
    errors = [(n, v) for n, v in out if isinstance(v, str)]
    assert [n for n, _ in errors] == [2, 4]
    assert all(reason.startswith("invalid JSON") for _, reason in errors)


def test_a_file_ending_inside_a_value_is_rejected():
    out = records(b'{"a": 1}\n{"a": [1, 2,')
    assert out[0] == (1, {"a": 1})
    assert out[1][0] == 2 and "ends inside" in out[1][1]


def test_invalid_utf8_is_replaced_or_rejected():
    text = b'{"name": "caf\xe9"}'
    assert records(text) == [(1, {"name": "caf?"})]
    [(number, reason)] = records(text, accept_invalid_chars=False)
    assert number == 1 and "invalid UTF-8 byte 0xe9" in reason


def test_non_json_text_is_rejected_per_line():
    out = records(b"hello world\nNaN\n{\"ok\": true}")
    assert out[2] == (3, {"ok": True})
    assert out[0][1].startswith("invalid JSON") and out[1][1].startswith("invalid JSON")


def test_jsonpaths_forms():
    doc = b'{"jsonpaths": ["$[\'artist\']", "$.user.id", "$[\\"x y\\"]", "$[\'tags\'][0]"]}'
    assert parse_jsonpaths(doc) == [("artist",), ("user", "id"), ("x y",), ("tags", 0)]
    with pytest.raises(ValueError, match="jsonpaths"):
        parse_jsonpaths(b'{"paths": []}')
    with pytest.raises(ValueError, match="start with"):
        parse_jsonpaths(b'{"jsonpaths": ["artist"]}')


def test_jsonpaths_must_match_the_columns_one_to_one():
    with pytest.raises(ValueError, match="2 paths but staging has 1 columns"):
        jsoncopy.JsonCopy("staging", [("a", "integer", None, True)], [("a",), ("b",)], CopyOptions())


OPTIONS = CopyOptions()


def convert(data_type, value, max_length=None, options=OPTIONS):
    return column_converter("col", data_type, max_length, options)(value)


def test_text_columns_take_numbers_booleans_and_nested_values_as_text():
    assert convert("character varying", "x") == "x"
    assert convert("character varying", 311) == "311"
    assert convert("character varying", 4.6) == "4.6"
    assert convert("character varying", True) == "true"
    assert convert("character varying", {"a": [1]}) == '{"a":[1]}'
    assert convert("character varying", None) == NULL


def test_empty_and_blank_strings_become_null():
    assert convert("character varying", "") == NULL
    assert convert("character varying", "   ") == NULL
    keep = CopyOptions(empty_as_null=False, blanks_as_null=False)
    assert convert("character varying", "", options=keep) == ""
    assert convert("character varying", "  ", options=keep) == "  "


def test_copy_text_escapes_control_characters():
    assert convert("character varying", "a\tb\nc\\d\re") == "a\\tb\\nc\\\\d\\re"


def test_varchar_length_counts_bytes_and_truncatecolumns_cuts_on_a_character():
    assert convert("character varying", "é" * 4, max_length=8) == "é" * 4
    with pytest.raises(RecordError, match="10 bytes exceed the column's 8"):
        convert("character varying", "é" * 5, max_length=8)
    cut = CopyOptions(truncate_columns=True)
    assert convert("character varying", "aé" * 5, max_length=8, options=cut) == "aéaéa"


def test_integers_accept_numeric_strings_and_reject_the_rest():
    assert convert("integer", 42) == "42"
    assert convert("integer", " 42 ") == "42"
    assert convert("bigint", "") == NULL
    for bad in ("4x", 4.5, True, [1]):
        with pytest.raises(RecordError, match="not a whole number"):
            convert("integer", bad)
    with pytest.raises(RecordError, match="out of range"):
        convert("smallint", 40000)


def test_doubles_keep_their_exact_value():
    assert convert("double precision", 1540919166796.0) == "1540919166796.0"
    assert convert("double precision", 7) == "7.0"
    assert convert("double precision", "2.5") == "2.5"
    for bad in ("abc", "nan", {"a": 1}):
        with pytest.raises(RecordError, match="not a number"):
            convert("double precision", bad)


def test_a_nul_character_is_rejected_naming_the_column_whatever_acceptinvchars_says():
    # Redshift's COPY fails a record with a NUL unless NULL AS '\0' is given, which the
    # toolkit does not; ACCEPTINVCHARS replaces invalid UTF-8 only, and U+0000 is valid.
    for accept in (True, False):
        with pytest.raises(RecordError, match=r"a NUL character \(U\+0000\)") as raised:
            convert("character varying", "Foo\x00Bar", options=CopyOptions(accept_invalid_chars=accept))
        assert raised.value.column == "col"


def test_chunked_reader_returns_everything_in_order():
    reader = jsoncopy.ChunkedReader(iter([b"ab", b"cde", b"", b"f"]), target=4)
    assert reader.read(3) == b"abc"
    assert reader.read(10) == b"def"
    assert reader.read(10) == b""


def _copy(data: bytes, **options):
    from sparkify.sources import SourceObject

    class Memory(SourceObject):
        def open(self):
            return io.BytesIO(data)

    copier = jsoncopy.JsonCopy("t", [("name", "character varying", 64, True)], "auto", CopyOptions(**options))
    rows = list(copier.rows([Memory("memory://x.json", "x.json", len(data), "1")]))
    return rows, copier.result.errors


def test_a_lone_surrogate_escape_is_replaced_and_noted_or_rejected():
    rows, errors = _copy(b'{"name": "a\\ud800b"}')
    assert rows == [b"a?b\n"]
    assert [(e.disposition, e.line_number) for e in errors] == [("replaced", 1)]
    rows, errors = _copy(b'{"name": "a\\ud800b"}', accept_invalid_chars=False, max_errors=10)
    assert rows == [] and errors[0].disposition == "rejected" and "surrogate" in errors[0].reason


def test_maxerror_counts_only_rejections():
    rows, errors = _copy(b'{"name": "ok"}\n{bad\n{"name": "caf\xe9"}', max_errors=2)
    assert rows == [b"ok\n", b"caf?\n"]
    assert [e.disposition for e in errors] == ["rejected", "replaced"]
    with pytest.raises(jsoncopy.TooManyErrors, match="rejected 2 records, and MAXERROR = 2 fails a load at 2"):
        _copy(b'{"name": "ok"}\n{bad\n{worse', max_errors=2)


@pytest.mark.parametrize("max_errors, tolerated", [(0, 0), (1, 0), (2, 1), (100, 99)])
def test_maxerror_fails_the_load_at_that_many_rejections_as_redshift_does(max_errors, tolerated):
    # AWS, "Data load operations": MAXERROR n fails the load at n errors or more; 0 and 1 at the first.
    lines = [b'{"name": "ok"}'] + [b"{bad"] * tolerated
    rows, errors = _copy(b"\n".join(lines), max_errors=max_errors)
    assert rows == [b"ok\n"] and len(errors) == tolerated
    with pytest.raises(jsoncopy.TooManyErrors, match=f"rejected {tolerated + 1} records"):
        _copy(b"\n".join(lines + [b"{bad"]), max_errors=max_errors)


def test_the_fast_row_path_gives_exactly_what_the_generic_path_gives():
    from conftest import DATA

    from sparkify.config import Source
    from sparkify.sources import list_objects

    columns = [("artist", "character varying", 8, True), ("n", "integer", None, False),
               ("x", "double precision", None, True), ("flag", "boolean", None, True)]
    lines = [b'{"artist": "ok", "n": 1, "x": 2.5, "flag": true}', b'{"artist": "a\\\\b", "n": "7", "x": 3}',
             b'{"artist": "tab\\there", "n": 2}', b'{"artist": "   ", "n": 3, "x": null}',
             b'{"artist": "\\u00e9\\u00e9\\u00e9\\u00e9\\u00e9", "n": 4}', b'{"artist": 311, "n": 5, "x": "1e3"}',
             b'{"n": 99999999999}', b'{"artist": "x"}', b'[1, 2]']
    data = b"\n".join(lines)
    outputs = []
    for fast in (True, False):
        copier = jsoncopy.JsonCopy("t", columns, [("artist",), ("n",), ("x",), ("flag",)],
                                   CopyOptions(max_errors=100))
        assert copier.fast_row is not None
        if not fast:
            copier.fast_row = None

        class Memory(jsoncopy.SourceObject):
            def open(self):
                return io.BytesIO(data)

        rows = list(copier.rows([Memory("memory://x", "x", len(data), "1")]))
        outputs.append((rows, [(e.line_number, e.reason) for e in copier.result.errors]))
    assert outputs[0] == outputs[1]
    # And on the real logs, with the real JSONPaths file.
    events = Source(str(DATA / "log_data"))
    paths = parse_jsonpaths((DATA / "log_json_path.json").read_bytes())
    from sparkify.config import load_config
    from sparkify.dryrun import DryRunWarehouse  # the staging columns, read from the DDL

    staging = DryRunWarehouse(load_config()).table_columns("staging_events")
    assert staging[-1][0] == "object_id"  # the loader's column: each row's file, no JSON key
    objects = list_objects(events)
    ids = {obj.url: number for number, obj in enumerate(objects, start=101)}
    real = []
    for fast in (True, False):
        copier = jsoncopy.JsonCopy("staging_events", staging[:-1], paths, CopyOptions(max_errors=100), object_ids=ids)
        if not fast:
            copier.fast_row = None
        real.append(list(copier.rows(objects)))
    assert real[0] == real[1] and len(real[0]) == 8056
    # Every row ends with its file's id, after the JSON's 18 columns.
    assert {row.rstrip(b"\n").split(b"\t")[-1] for row in real[0]} == {str(n).encode() for n in ids.values()}
    assert {len(row.split(b"\t")) for row in real[0]} == {19}


def test_json_nested_too_deeply_is_one_rejected_record_and_the_next_loads():
    deep_line = b"[" * 10_000 + b"]" * 10_000
    deep_lines = b'{"a":\n' + b"[\n" * 3_000 + b"]\n" * 3_000 + b"}"
    for deep in (deep_line, deep_lines):
        out = records(deep + b'\n{"a": 1}')
        assert [(n, "nested too deeply" in v) for n, v in out[:-1] if isinstance(v, str)] == [(1, True)]
        assert out[-1][1] == {"a": 1} and len(out) == 2


def test_a_value_too_deep_to_store_as_json_text_is_rejected_naming_the_column():
    rows, errors = _copy(b'{"name": ' + b"[" * 300 + b"]" * 300 + b'}\n{"name": "ok"}', max_errors=10)
    assert rows == [b"ok\n"]
    [error] = errors
    assert error.column == "name" and "nested too deeply" in error.reason


def _pretty_big_object(first_key: str = "song_id") -> bytes:
    # About 6.8 MB over 110,000 lines, as json.dumps(indent=4) writes it.
    import json

    return json.dumps({first_key: "SOBIG", "tags": ["x" * 50 for _ in range(110_000)]}, indent=4).encode()


@pytest.mark.timeout(60)
def test_reading_a_pretty_printed_object_over_4_mb_gives_one_error_and_goes_on_after_it():
    big = _pretty_big_object()
    lines = big.count(b"\n") + 1
    out = records(big + b'\n{"a": 1}\n' + big[:-100])
    errors = [(n, v) for n, v in out if isinstance(v, str)]
    assert [n for n, _ in errors] == [1, lines + 2]
    assert all("larger than 4 MB" in reason for _, reason in errors)
    assert f"lines 1-{lines:,})" in errors[0][1]
    assert [(n, v) for n, v in out if isinstance(v, dict)] == [(lines + 1, {"a": 1})]
    assert "the file ends inside it" in errors[1][1]


def _line_of(size: int) -> bytes:
    """One JSON object on one line, exactly size bytes, braces included."""
    head = b'{"name": "big", "pad": "'
    return head + b"x" * (size - len(head) - 2) + b'"}'


def test_an_object_of_4_mb_on_one_line_loads_and_one_byte_more_fails_the_load(tmp_path):
    from sparkify.sources import SourceObject

    limit = jsoncopy.MAX_OBJECT_BYTES
    assert records(_line_of(limit))[0][1]["name"] == "big"
    for name, data in (("one.json", b'{"name": "ok"}\n{bad\n' + _line_of(limit + 1) + b'\n{"name": "after"}'),
                       ("two.json", b'{"name": "ok"} ' + _line_of(limit + 1))):  # two values on one line
        path = tmp_path / name
        path.write_bytes(data)
        copier = jsoncopy.JsonCopy("t", [("name", "character varying", 64, True)], "auto", CopyOptions(max_errors=100))
        with pytest.raises(jsoncopy.ObjectTooLarge) as raised:
            list(copier.rows([SourceObject(str(path), name, len(data), "1")]))
        line = 3 if name == "one.json" else 1
        assert str(raised.value).startswith(f"loading t failed at {path} line {line}: a JSON value larger than 4 MB")
        assert "fails the whole load" in str(raised.value)
        assert [e.line_number for e in raised.value.errors] == ([2, 3] if name == "one.json" else [1])


def test_a_pretty_printed_object_over_4_mb_fails_the_load_too(tmp_path):
    from sparkify.sources import SourceObject

    path = tmp_path / "pretty.json"
    path.write_bytes(b'{"name": "ok"}\n' + _pretty_big_object("name"))
    copier = jsoncopy.JsonCopy("t", [("name", "character varying", 64, True)], "auto", CopyOptions(max_errors=100))
    with pytest.raises(jsoncopy.ObjectTooLarge, match=r"line 2: a JSON value larger than 4 MB.*\(lines 2-"):
        list(copier.rows([SourceObject(str(path), path.name, path.stat().st_size, "1")]))


@pytest.mark.timeout(60)
def test_a_big_pretty_printed_object_under_the_limit_loads_in_linear_time():
    import json

    value = {"tags": ["y" * 30 for _ in range(90_000)]}  # 3.6 MB over 90,000 lines
    out = records(json.dumps(value, indent=4).encode() + b'\n{"a": 1}')
    assert out == [(1, value), (90_005, {"a": 1})]


def test_an_array_of_records_is_rejected_as_an_array_not_as_missing_fields():
    data = b'[{"song_id": "SO1"}, {"song_id": "SO2"}]'
    copier = jsoncopy.JsonCopy("staging_songs", [("song_id", "character varying", 32, False)], "auto",
                               CopyOptions(max_errors=10), record_name="song")
    rows = list(copier.rows([_memory(data)]))
    assert rows == []
    [error] = copier.result.errors
    assert error.column is None and error.line_number == 1
    assert error.reason.startswith("a JSON array, not an object")
    assert "one JSON object per song" in error.reason
    # With a JSONPaths file that reads array elements, arrays are records as Redshift loads them.
    by_index = jsoncopy.JsonCopy("t", [("song_id", "character varying", 32, False)], [(0, "song_id")],
                                 CopyOptions())
    assert list(by_index.rows([_memory(data)])) == [b"SO1\n"]


def _memory(data: bytes, url: str = "memory://x.json"):
    from sparkify.sources import SourceObject

    class Memory(SourceObject):
        def open(self):
            return io.BytesIO(data)

    return Memory(url, url.rsplit("/", 1)[-1], len(data), "1")


def test_a_source_that_cannot_be_opened_is_one_rejected_object_and_the_rest_loads(tmp_path):
    import os

    from sparkify.config import Source
    from sparkify.sources import list_objects

    (tmp_path / "a-good.json").write_bytes(b'{"name": "ok"}')
    os.symlink("loop-b.json", tmp_path / "loop-a.json")
    os.symlink("loop-a.json", tmp_path / "loop-b.json")
    os.symlink("missing.json", tmp_path / "dangling.json")
    os.mkfifo(tmp_path / "pipe.json")
    objects = list_objects(Source(str(tmp_path)))
    assert [o.key for o in objects] == ["a-good.json", "dangling.json", "loop-a.json", "loop-b.json", "pipe.json"]
    copier = jsoncopy.JsonCopy("t", [("name", "character varying", 64, True)], "auto", CopyOptions(max_errors=10))
    assert list(copier.rows(objects)) == [b"ok\n"]
    reasons = {e.source.rsplit("/", 1)[-1]: e.reason for e in copier.result.errors}
    assert reasons["dangling.json"].startswith("cannot be read: No such file or directory")
    assert "a symbolic link to a missing file" in reasons["dangling.json"]
    assert reasons["loop-a.json"].startswith("cannot be read: Too many levels of symbolic links")
    assert reasons["pipe.json"].startswith("not a regular file (a named pipe)")
    assert all(e.line_number is None and e.disposition == "rejected" for e in copier.result.errors)
    assert copier.result.unread == {str(tmp_path / name) for name in reasons}
    assert copier.result.per_object[str(tmp_path / "pipe.json")] == (0, 1)


def test_maxerror_names_an_unreadable_first_rejection_without_a_line(tmp_path):
    import os

    from sparkify.config import Source
    from sparkify.sources import list_objects

    os.symlink("missing.json", tmp_path / "dangling.json")
    copier = jsoncopy.JsonCopy("t", [("name", "character varying", 64, True)], "auto", CopyOptions(max_errors=0))
    with pytest.raises(jsoncopy.TooManyErrors) as raised:
        list(copier.rows(list_objects(Source(str(tmp_path)))))
    assert f"(first: {tmp_path / 'dangling.json'}: cannot be read: No such file" in str(raised.value)

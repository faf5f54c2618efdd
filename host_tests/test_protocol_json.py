"""firmware/jsonstrict.py agrees with CPython's json (RFC 8259) on every input, except that
it refuses NaN/Infinity and nesting deeper than MAX_DEPTH; and its UTF-8 check agrees with
CPython's strict decoder. (MicroPython's own json/decoder are lenient: the same cases run
on the VMs in host_tests/mp/test_protocol_mp.py.)"""

import json
import math
import re

from hypothesis import given, settings
from hypothesis import strategies as st

import jsonstrict

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner,
                                                                max_size=3),
    max_leaves=12)

NOISE = [" ", "\t", "\r", "\n", ",", ":", "{", "}", "[", "]", '"', "\\", "\\u", "0", "-", "e",
         "1.", ".5", "01", "NaN", "tru", "\x01", "\u00e9", "\ud800", "/"]


def reference(text):
    """CPython's reading, with the two documented refusals applied."""
    def no_constant(name):
        raise ValueError(name)
    v = json.loads(text, parse_constant=no_constant)
    if _depth(v) > jsonstrict.MAX_DEPTH:
        raise ValueError("deep")
    return v


def _depth(v):
    if isinstance(v, dict):
        return 1 + max([_depth(x) for x in v.values()] + [0])
    if isinstance(v, list):
        return 1 + max([_depth(x) for x in v] + [0])
    return 0


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b


def agree(text):
    try:
        want = reference(text)
    except (ValueError, RecursionError):
        want = ValueError
    try:
        got = jsonstrict.loads(text)
    except ValueError:
        got = ValueError
    if want is ValueError or got is ValueError:
        assert want is got, (text, want, got)
    else:
        assert same(got, want), (text, want, got)


@settings(max_examples=1500, deadline=None)
@given(v=json_values, seps=st.sampled_from([(",", ":"), (", ", ": "), (" ,\n", "\t: ")]),
       asc=st.booleans(), edits=st.lists(st.tuples(st.integers(0, 200), st.sampled_from(NOISE),
                                                   st.integers(0, 2)), max_size=3))
def test_agrees_with_cpython_json(v, seps, asc, edits):
    text = json.dumps(v, separators=seps, ensure_ascii=asc)
    agree(text)
    for pos, tok, op in edits:
        k = pos % (len(text) + 1)
        text = text[:k] + tok + text[k:] if op == 0 else (
            text[:k] + text[k + 1:] if op == 1 else text[:k])
        agree(text)


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(NOISE + ["a", "true", "null", "false", "7"]), max_size=20))
def test_agrees_on_noise(tokens):
    agree("".join(tokens))


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=12) | st.text(max_size=6).map(lambda s: s.encode("utf-8", "surrogatepass")))
def test_utf8_check_agrees_with_cpython(data):
    try:
        data.decode("utf-8")
        want = True
    except UnicodeDecodeError:
        want = False
    assert jsonstrict.utf8_ok(data) is want, data


def test_error_messages_name_a_position():
    for text in ("{", '{"a" 1}', "[1,]", '"\\x"', "01"):
        try:
            jsonstrict.loads(text)
        except ValueError as e:
            assert re.search(r"at char \d+$", str(e)), str(e)
        else:
            raise AssertionError(text)

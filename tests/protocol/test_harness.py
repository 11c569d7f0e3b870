"""
The harness checks itself: matching, the wire-form reference, and that a
sanitizer report in a server log fails the test.
"""

import shutil

import pytest

from harness import (Server, expected_uidl, glob_match, unstuff, wire_form,
                     wire_size)


def test_glob_brackets_are_literal():
    assert glob_match("-ERR [AUTH]*", "-ERR [AUTH] Authentication failed.")
    assert not glob_match("-ERR [AUTH]*", "-ERR A Authentication failed.")
    assert not glob_match("+OK*", "-ERR x")
    assert glob_match("+OK ? octets", "+OK 5 octets")


def test_wire_reference_sizes():
    assert wire_size(b"") == 0
    assert wire_size(b"a\nb") == 6
    assert wire_form(b"x\r") == b"x\r\r\n"
    assert wire_form(b"h\n\n.b\n", stuff=True, top=0) == b"h\r\n\r\n"


def test_unstuff_rejects_malformed():
    for raw in (b"", b"abc\r\n", b"a\r\n.\r\nb\r\n.\r\n"):
        with pytest.raises(ValueError):
            unstuff(raw)


def test_expected_uidl():
    assert expected_uidl("abc") == "abc"
    assert len(expected_uidl("a" * 71)) == 32
    assert expected_uidl("a b") != "a b"


def test_check_log_catches_sanitizer_reports():
    s = Server()
    try:
        with open(s.log_path, "w") as f:
            f.write("info: ready\n==1==ERROR: AddressSanitizer: "
                    "heap-use-after-free\n")
        with pytest.raises(AssertionError):
            s.check_log()
        with pytest.raises(AssertionError):
            s.cleanup()
    finally:
        Server.live.discard(s)
        shutil.rmtree(s.dir, ignore_errors=True)

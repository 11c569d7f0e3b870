"""The interop mailbox covers what it claims to (no server needed)."""

import email
import email.policy

import harness

import corpus

M = dict(corpus.MESSAGES)


def _headers(data):
    return data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0].split(b"\n")


def test_every_message_has_a_unique_message_id():
    assert len(corpus.BY_ID) == len(corpus.MESSAGES)
    assert None not in corpus.BY_ID


def test_line_endings():
    assert b"\r" not in M["lf"]
    assert M["crlf"].count(b"\n") == M["crlf"].count(b"\r\n") > 0
    assert not M["nofinal"].endswith(b"\n")
    assert corpus.wire(M["nofinal"]).endswith(b"no newline\r\n")
    assert corpus.wire(M["crlf"]) == M["crlf"]


def test_dot_lines():
    lines = harness.wire_lines(M["dots"])
    assert b"." in lines                     # a line that is only "."
    assert any(l.startswith(b"..") for l in lines)
    assert lines[-1] == b"."                 # and as the very last line
    stuffed = harness.wire_form(M["dots"], stuff=True)
    assert b"\r\n..\r\n" in stuffed
    assert any(l.startswith(b".") and len(l) > 1
               for l in harness.wire_lines(M["large"]))


def test_mime_attachment_round_trips():
    msg = email.message_from_bytes(M["mime"], policy=email.policy.default)
    assert msg.is_multipart()
    parts = list(msg.iter_attachments())
    assert len(parts) == 1
    assert parts[0].get_content() == corpus.MIME_PAYLOAD


def test_large_and_eight_bit():
    assert len(M["large"]) >= 1024 * 1024
    body = M["utf8"].split(b"\n\n", 1)[1]
    assert any(b >= 0x80 for b in body)
    body.decode("utf-8")


def test_header_lines_fit_78_columns():
    for label, data in corpus.MESSAGES:
        for line in _headers(data):
            assert len(line) <= 78, (label, line)

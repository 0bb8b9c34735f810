"""The SSE parser: the same events whatever the split (every byte offset, byte by byte, CRLF),
comments, names, multi-line data, a BOM split across pieces, invalid UTF-8, a last event
without its blank line."""

import unittest

from aigw_plugin.sse import Event, SseParser

BODY = (
    'data: {"a":"héllo 🌍"}\n\n: keep-alive comment\n\nevent: output\nid: 7\n'
    "data: line one\ndata: line two\n\ndata: [DONE]\n\n"
).encode()

WHOLE = [
    Event(data='{"a":"héllo 🌍"}'),
    Event(data="line one\nline two", name="output", id="7"),
    Event(data="[DONE]", id="7"),
]


def parse(*pieces: bytes):
    parser = SseParser()
    events = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.finish())
    return events


class SseTest(unittest.TestCase):
    def test_data_comments_names_and_multiline_data(self):
        self.assertEqual(parse(BODY), WHOLE)

    def test_split_at_every_byte_offset_gives_the_same_events(self):
        for body in (BODY, BODY.replace(b"\n", b"\r\n")):
            for cut in range(len(body) + 1):
                self.assertEqual(parse(body[:cut], body[cut:]), WHOLE, f"split at byte {cut}")

    def test_byte_by_byte_gives_the_same_events(self):
        crlf = BODY.replace(b"\n", b"\r\n")
        self.assertEqual(parse(*(crlf[i : i + 1] for i in range(len(crlf)))), WHOLE)

    def test_events_come_as_soon_as_their_blank_line_arrives(self):
        parser = SseParser()
        self.assertEqual(parser.feed(b"data: one\n"), [])
        self.assertEqual([e.data for e in parser.feed(b"\ndata: tw")], ["one"])
        self.assertEqual(parser.feed(b"o\n"), [])
        self.assertEqual([e.data for e in parser.feed(b"\n")], ["two"])
        self.assertEqual(parser.finish(), [])

    def test_one_leading_space_is_dropped_and_colons_stay(self):
        events = parse(b"data:no-space\n\ndata:  two spaces: and a colon\n\n")
        self.assertEqual([e.data for e in events], ["no-space", " two spaces: and a colon"])

    def test_empty_data_dispatches_but_no_data_does_not(self):
        events = parse(b"data\n\nevent: ping\n\nretry: 10\n\n")
        self.assertEqual(events, [Event(data="")])

    def test_last_event_without_blank_line_is_delivered_on_finish(self):
        parser = SseParser()
        self.assertEqual(len(parser.feed(b"data: a\n\ndata: last")), 1)
        self.assertEqual([e.data for e in parser.finish()], ["last"])

    def test_a_split_bom_is_skipped(self):
        self.assertEqual([e.data for e in parse(b"\xef", b"\xbb", b"\xbfdata: x\n\n")], ["x"])

    def test_invalid_utf8_is_replaced_not_fatal(self):
        self.assertEqual([e.data for e in parse(b"data: \xff\xfeok\n\n")], ["\ufffd\ufffdok"])


if __name__ == "__main__":
    unittest.main()

//! An incremental Server-Sent Events parser (the WHATWG `text/event-stream` format).
//!
//! The host hands a stream decoder the body in whatever pieces the network produced, so a piece
//! may end in the middle of a line, of a `\r\n`, or of a UTF-8 character. The parser keeps the
//! unfinished line as bytes and only decodes complete lines: a line break byte never occurs inside
//! a multi-byte UTF-8 sequence, so a complete line is always complete UTF-8.

/// One dispatched event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Event {
    /// The `event:` field, when the stream named the event (Replicate's `output`, `done`, …).
    pub name: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
    /// The `id:` field, when present.
    pub id: Option<String>,
}

/// A byte order mark, which may open a stream and is not part of its first line.
const BOM: &[u8] = b"\xEF\xBB\xBF";

#[derive(Debug, Default)]
pub struct SseParser {
    /// Bytes of the line not yet terminated.
    line: Vec<u8>,
    /// Data of the event being assembled: its `data:` lines' values joined with `\n`.
    data: String,
    /// Whether any `data:` line was seen for the event being assembled (data may be empty).
    has_data: bool,
    name: Option<String>,
    id: Option<String>,
    /// Whether the very start of the stream has been passed (a leading BOM is skipped there).
    started: bool,
}

impl SseParser {
    pub fn new() -> Self {
        SseParser::default()
    }

    /// Feeds the next piece of the body; returns the events it completed.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut events = Vec::new();
        let mut rest = bytes;
        if !self.started && self.line.is_empty() && rest.len() >= BOM.len() {
            // The usual first piece: enough to decide on the BOM without copying the piece.
            self.started = true;
            rest = rest.strip_prefix(BOM).unwrap_or(rest);
        }
        if !self.started {
            // The BOM may itself arrive split; wait until there are 3 bytes to decide.
            self.line.extend_from_slice(rest);
            if self.line.len() < 3 && BOM.starts_with(&self.line) {
                return events;
            }
            self.started = true;
            let mut pending = std::mem::take(&mut self.line);
            if pending.starts_with(BOM) {
                pending.drain(..3);
            }
            return self.feed(&pending);
        }
        // memchr reads a word at a time: most of a stream's bytes are searched here.
        while let Some(newline) = memchr::memchr(b'\n', rest) {
            if self.line.is_empty() {
                self.process_line(&rest[..newline], &mut events);
            } else {
                self.line.extend_from_slice(&rest[..newline]);
                let line = std::mem::take(&mut self.line);
                self.process_line(&line, &mut events);
                // Reuse the allocation for the next partial line.
                self.line = line;
                self.line.clear();
            }
            rest = &rest[newline + 1..];
        }
        self.line.extend_from_slice(rest);
        events
    }

    /// The body ended. A stream that stops without the final blank line (or even without the final
    /// line break) still delivers its last event: being lenient here costs nothing and keeps the
    /// last chunk of sloppy servers.
    pub fn finish(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        self.started = true;
        if !self.line.is_empty() {
            let line = std::mem::take(&mut self.line);
            self.process_line(&line, &mut events);
        }
        self.dispatch(&mut events);
        events
    }

    fn process_line(&mut self, line: &[u8], events: &mut Vec<Event>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            self.dispatch(events);
            return;
        }
        if line[0] == b':' {
            return; // a comment, e.g. OpenRouter's `: OPENROUTER PROCESSING` keep-alive
        }
        let (field, value) = match line.iter().position(|&byte| byte == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        // Valid UTF-8 (nearly every line) is checked on the fast path and borrowed; only a
        // broken line pays for the replacement characters.
        let value = match std::str::from_utf8(value) {
            Ok(text) => std::borrow::Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(value),
        };
        match field {
            b"data" => {
                // Lines join with `\n`, put before each line after the first rather than after
                // each and popped at the end: a one-line event (nearly every one) is then
                // allocated once, at its exact size, with no second growth for the `\n`.
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(&value);
                self.has_data = true;
            }
            b"event" => self.name = Some(value.into_owned()),
            // The spec ignores ids containing NUL.
            b"id" if !value.contains('\0') => self.id = Some(value.into_owned()),
            _ => {} // `retry:` and unknown fields are ignored, as the spec says
        }
    }

    fn dispatch(&mut self, events: &mut Vec<Event>) {
        let name = self.name.take();
        if !self.has_data {
            // An event with no data is not dispatched (spec), but its fields still reset.
            return;
        }
        self.has_data = false;
        events.push(Event {
            name,
            data: std::mem::take(&mut self.data),
            id: self.id.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_one(body: &[u8]) -> Vec<Event> {
        let mut parser = SseParser::new();
        let mut events = parser.feed(body);
        events.extend(parser.finish());
        events
    }

    fn data(events: &[Event]) -> Vec<&str> {
        events.iter().map(|event| event.data.as_str()).collect()
    }

    const BODY: &str = "data: {\"a\":\"héllo 🌍\"}\n\n: keep-alive comment\n\nevent: output\nid: 7\ndata: line one\ndata: line two\n\ndata: [DONE]\n\n";

    #[test]
    fn parses_data_comments_names_and_multiline_data() {
        let events = parse_in_one(BODY.as_bytes());
        assert_eq!(
            events,
            vec![
                Event {
                    name: None,
                    data: "{\"a\":\"héllo 🌍\"}".to_owned(),
                    id: None
                },
                Event {
                    name: Some("output".to_owned()),
                    data: "line one\nline two".to_owned(),
                    id: Some("7".to_owned())
                },
                Event {
                    name: None,
                    data: "[DONE]".to_owned(),
                    id: Some("7".to_owned())
                },
            ]
        );
    }

    #[test]
    fn split_at_every_byte_offset_gives_the_same_events() {
        for body in [BODY.to_owned(), BODY.replace('\n', "\r\n")] {
            let whole = parse_in_one(body.as_bytes());
            assert_eq!(whole.len(), 3);
            let bytes = body.as_bytes();
            for cut in 0..=bytes.len() {
                let mut parser = SseParser::new();
                let mut events = parser.feed(&bytes[..cut]);
                events.extend(parser.feed(&bytes[cut..]));
                events.extend(parser.finish());
                assert_eq!(events, whole, "split at byte {cut}");
            }
        }
    }

    #[test]
    fn byte_by_byte_feeding_gives_the_same_events() {
        let crlf = BODY.replace('\n', "\r\n");
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for byte in crlf.as_bytes() {
            events.extend(parser.feed(std::slice::from_ref(byte)));
        }
        events.extend(parser.finish());
        assert_eq!(events, parse_in_one(BODY.as_bytes()));
    }

    #[test]
    fn events_are_returned_as_soon_as_their_blank_line_arrives() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: one\n").is_empty());
        assert_eq!(data(&parser.feed(b"\ndata: tw")), vec!["one"]);
        assert!(parser.feed(b"o\n").is_empty());
        assert_eq!(data(&parser.feed(b"\n")), vec!["two"]);
        assert!(parser.finish().is_empty());
    }

    #[test]
    fn value_keeps_all_but_one_leading_space_and_colons_inside() {
        let events = parse_in_one(b"data:no-space\n\ndata:  two spaces: and a colon\n\n");
        assert_eq!(data(&events), vec!["no-space", " two spaces: and a colon"]);
    }

    #[test]
    fn empty_data_line_dispatches_an_empty_event_but_no_data_dispatches_nothing() {
        let events = parse_in_one(b"data\n\nevent: ping\n\nretry: 10\n\n");
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data, "");
        assert_eq!(events[0].name, None);
    }

    #[test]
    fn last_event_without_trailing_blank_line_is_delivered_on_finish() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: a\n\ndata: last").len() == 1);
        assert_eq!(data(&parser.finish()), vec!["last"]);
    }

    #[test]
    fn leading_bom_is_skipped_even_when_split() {
        let mut parser = SseParser::new();
        let mut events = parser.feed(b"\xEF");
        events.extend(parser.feed(b"\xBB"));
        events.extend(parser.feed(b"\xBFdata: x\n\n"));
        assert_eq!(data(&events), vec!["x"]);
    }

    #[test]
    fn a_first_piece_is_read_as_it_comes_with_or_without_a_bom() {
        for body in [&b"\xEF\xBB\xBFdata: x\n\nda"[..], &b"data: x\n\nda"[..]] {
            let mut parser = SseParser::new();
            assert_eq!(data(&parser.feed(body)), vec!["x"]);
            // The first piece's unfinished line is kept for the next one.
            assert_eq!(data(&parser.feed(b"ta: y\n\n")), vec!["y"]);
        }
        // Only a leading BOM is dropped: one later in the stream is data.
        let mut parser = SseParser::new();
        let events = parser.feed(b"data: a\n\ndata: \xEF\xBB\xBFb\n\n");
        assert_eq!(data(&events), vec!["a", "\u{FEFF}b"]);
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        let events = parse_in_one(b"data: \xFF\xFEok\n\n");
        assert_eq!(data(&events), vec!["\u{FFFD}\u{FFFD}ok"]);
    }
}

//! The `text/event-stream` side of an MCP reply: a server may answer a request with a stream of
//! events (progress notifications, then the response) instead of one JSON object. This reads
//! the stream's `data:` payloads as they complete; which payload is the response is the
//! caller's question.

/// An incremental parser of server-sent events, fed the body as it arrives.
#[derive(Debug, Default)]
pub struct Events {
    /// Bytes of a line not yet ended.
    partial: Vec<u8>,
    /// The `data:` lines of the event being read.
    data: Vec<String>,
    /// Whether the last byte fed ended a line with `\r` (its `\n` may start the next chunk).
    after_cr: bool,
}

impl Events {
    /// Feeds `chunk` and returns the data of every event it completed, in order. Lines end in
    /// `\n`, `\r\n` or `\r`; comments (`:`) and the `event`, `id` and `retry` fields are read
    /// and dropped: the payload says what it is.
    pub fn feed(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut done = Vec::new();
        for &byte in chunk {
            if self.after_cr {
                self.after_cr = false;
                if byte == b'\n' {
                    continue;
                }
            }
            match byte {
                b'\n' => self.line(&mut done),
                b'\r' => {
                    self.after_cr = true;
                    self.line(&mut done);
                }
                _ => self.partial.push(byte),
            }
        }
        done
    }

    fn line(&mut self, done: &mut Vec<String>) {
        let line = String::from_utf8_lossy(&self.partial).into_owned();
        self.partial.clear();
        if line.is_empty() {
            if !self.data.is_empty() {
                done.push(self.data.join("\n"));
                self.data.clear();
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line.as_str(), ""),
        };
        if field == "data" {
            self.data.push(value.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_complete_across_chunks_and_line_endings() {
        let mut events = Events::default();
        assert!(
            events
                .feed(b": ping\r\n\r\nevent: message\r\nda")
                .is_empty()
        );
        assert_eq!(events.feed(b"ta: {\"a\":1}\r"), Vec::<String>::new());
        assert_eq!(events.feed(b"\n\r\n"), vec!["{\"a\":1}".to_owned()]);
        assert_eq!(
            events.feed(b"data: one\ndata:two\n\nid: 7\ndata: three\r\rdata\n\n"),
            vec!["one\ntwo".to_owned(), "three".to_owned(), String::new()]
        );
    }

    #[test]
    fn an_event_without_data_is_no_event() {
        let mut events = Events::default();
        assert!(events.feed(b"event: message\n\n: comment\n\n").is_empty());
    }
}

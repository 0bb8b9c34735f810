//! How a human log line writes its fields: `name=value`, separated by spaces, the message
//! without its name, every value escaped ([`Escaping`]) and capped at [`MAX_FIELD_BYTES`].
//!
//! The common values take a short way that writes the same text: a string of plain ASCII
//! (nothing to escape) is put between quotes as it is, an integer through `itoa`, a boolean as
//! its word. Everything else, and any string with a quote, a backslash, a control or a non-ASCII
//! character, goes through its `Debug` form and [`Escaping`]. The per-request line has about
//! fifteen fields; written through `Debug` and the formatting machinery each, they were ~13,000
//! instructions of a JSON request's ~190,000 (docs/performance.md).

use std::fmt::{self, Write as _};

use aigw_telemetry::Budget;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::Writer;

/// The most bytes of one field value a human log line shows.
pub(crate) const MAX_FIELD_BYTES: usize = 4096;

/// The human format's field formatter (in place of tracing-subscriber's default fields).
pub(crate) struct HumanFields;

impl<'writer> FormatFields<'writer> for HumanFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'writer>, fields: R) -> fmt::Result {
        let mut line = FieldWriter {
            writer,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut line);
        line.result
    }
}

/// Writes one event's (or span's) fields into the line, keeping the first error.
struct FieldWriter<'writer> {
    writer: Writer<'writer>,
    first: bool,
    result: fmt::Result,
}

impl FieldWriter<'_> {
    /// The separator and `name=` of a field (nothing but the separator for the message).
    fn start(&mut self, field: &Field) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        let name = field.name();
        if name != "message" {
            self.writer.write_str(name)?;
            self.writer.write_char('=')?;
        }
        Ok(())
    }

    fn write(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self.start(field).and_then(|()| value(&mut self.writer));
        }
    }
}

/// Whether `text` needs nothing of `str`'s `Debug` but the quotes: printable ASCII other than
/// the quote and the backslash, which `Debug` escapes.
fn plain(text: &str) -> bool {
    text.bytes()
        .all(|b| matches!(b, b' '..=b'~') && b != b'"' && b != b'\\')
}

/// A value's `Debug` form, escaped and capped.
fn debug_value(writer: &mut Writer<'_>, value: &dyn fmt::Debug) -> fmt::Result {
    let mut escaping = Escaping::new(writer, MAX_FIELD_BYTES);
    write!(escaping, "{value:?}")?;
    escaping.finish()
}

impl Visit for FieldWriter<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.write(field, |w| {
            // The quotes count against the cap as `Debug` writes them.
            if value.len() + 2 <= MAX_FIELD_BYTES && plain(value) {
                w.write_char('"')?;
                w.write_str(value)?;
                w.write_char('"')
            } else {
                debug_value(w, &value)
            }
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.write(field, |w| w.write_str(itoa::Buffer::new().format(value)));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.write(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.write(field, |w| debug_value(w, value));
    }
}

/// A writer that escapes what could break or forge a line and stops after a byte budget,
/// saying how much it left out.
pub(crate) struct Escaping<'w, W: fmt::Write>(Budget<&'w mut W>);

impl<'w, W: fmt::Write> Escaping<'w, W> {
    pub(crate) fn new(inner: &'w mut W, budget: usize) -> Escaping<'w, W> {
        Escaping(Budget::new(inner, budget))
    }

    /// Says how many bytes were left out, if any.
    pub(crate) fn finish(self) -> fmt::Result {
        self.0.finish()
    }
}

/// Whether a character must not reach a log line as itself: controls (C0, DEL, C1), and the
/// characters that end lines or reorder text in viewers (U+2028/9, bidi marks and overrides).
fn unsafe_in_log(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // Nearly all log text is printable ASCII: one pass over the bytes, no char decoding.
        if s.bytes().all(|b| matches!(b, b' '..=b'~')) {
            return self.0.write_str(s);
        }
        let mut safe_from = 0;
        for (at, c) in s.char_indices() {
            if !unsafe_in_log(c) {
                continue;
            }
            self.0.write_str(&s[safe_from..at])?;
            // Controls are rare in log text: formatting one may allocate.
            let other;
            let text = match c {
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                c => {
                    other = format!("\\u{{{:x}}}", u32::from(c));
                    other.as_str()
                }
            };
            // An escape is written whole or not at all, counted as the character it stands for.
            self.0.write_whole(text, c.len_utf8())?;
            safe_from = at + c.len_utf8();
        }
        self.0.write_str(&s[safe_from..])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn escaped(text: &str, budget: usize) -> String {
        let mut out = String::new();
        let mut escaping = Escaping::new(&mut out, budget);
        escaping.write_str(text).unwrap();
        escaping.finish().unwrap();
        out
    }

    #[test]
    fn controls_and_line_breakers_come_out_as_visible_escapes() {
        assert_eq!(
            escaped("x\nINFO forged line\u{1b}[31m", 100),
            "x\\nINFO forged line\\u{1b}[31m"
        );
        assert_eq!(escaped("a\r\tb\u{0}\u{7f}", 100), "a\\r\\tb\\u{0}\\u{7f}");
        assert_eq!(escaped("c1\u{9b}31m", 100), "c1\\u{9b}31m");
        assert_eq!(escaped("l\u{2028}r\u{202e}", 100), "l\\u{2028}r\\u{202e}");
        // Ordinary text, quotes and non-ASCII letters are left alone.
        assert_eq!(escaped("groq/llama \"é\" ✓", 100), "groq/llama \"é\" ✓");
    }

    #[test]
    fn a_long_value_is_cut_at_the_budget_saying_how_much_is_missing() {
        let long = "é".repeat(3000);
        let out = escaped(&long, 4096);
        assert!(out.len() < 4096 + 20, "{}", out.len());
        assert!(
            out.ends_with("…(+1904 bytes)"),
            "{}",
            &out[out.len() - 30..]
        );
        let out = escaped("ab\ncd", 3);
        assert_eq!(out, "ab…(+3 bytes)");
        // A run cut before a control keeps what fits.
        assert_eq!(escaped("abcdef\n", 4), "abcd…(+3 bytes)");
        assert_eq!(escaped("abc", 3), "abc");
    }

    #[test]
    fn a_value_written_in_pieces_is_cut_once() {
        let mut out = String::new();
        let mut escaping = Escaping::new(&mut out, 4);
        for piece in ["ab", "cd", "ef", "\n"] {
            escaping.write_str(piece).unwrap();
        }
        escaping.finish().unwrap();
        assert_eq!(out, "abcd…(+3 bytes)");
    }

    /// A subscriber writing human lines (no time, no level, no target) into a buffer.
    fn lines(emit: impl FnOnce()) -> String {
        lines_with(HumanFields, emit)
    }

    fn lines_with<F>(fields: F, emit: impl FnOnce()) -> String
    where
        F: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        #[derive(Clone, Default)]
        struct Buffer(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buffer {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .without_time()
            .with_level(false)
            .with_target(false)
            .fmt_fields(fields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_kind_of_value_is_written_as_its_debug_form_would_be() {
        let line = lines(|| {
            tracing::info!(
                key = "bench",
                model = %"groq/llama",
                count = 42u64,
                delta = -7i64,
                stream = true,
                ratio = 0.5f64,
                absent = None::<&str>,
                quoted = "say \"hi\" \\ ok",
                accented = "café",
                shown = ?["a", "b"],
                "chat completion"
            );
        });
        assert_eq!(
            line,
            "chat completion key=\"bench\" model=groq/llama count=42 delta=-7 stream=true \
             ratio=0.5 quoted=\"say \\\"hi\\\" \\\\ ok\" accented=\"café\" shown=[\"a\", \"b\"]\n"
        );
    }

    #[test]
    fn the_short_ways_write_what_debug_writes() {
        use tracing_subscriber::field::MakeExt as _;
        // Every value through `Debug`, as the fields were written before the short ways.
        let reference = tracing_subscriber::fmt::format::debug_fn(|w, field, value| {
            if field.name() != "message" {
                write!(w, "{}=", field.name())?;
            }
            write!(w, "{value:?}")
        })
        .delimited(" ");
        let emit = || {
            for text in [
                "",
                "plain text",
                "a \"b\"",
                "back\\slash",
                "it's",
                "naïve ✓",
                "~ {}[]",
            ] {
                tracing::info!(text, n = u64::MAX, m = i64::MIN, yes = false, "line");
            }
        };
        let short = lines(emit);
        assert_eq!(short, lines_with(reference, emit));
        assert_eq!(short.lines().count(), 7);
    }

    #[test]
    fn a_string_field_cannot_break_the_line_and_is_capped() {
        let line = lines(|| {
            tracing::info!(model = "x\nINFO forged\u{1b}[31m\u{2028}", "m");
        });
        assert_eq!(line, "m model=\"x\\nINFO forged\\u{1b}[31m\\u{2028}\"\n");
        let long = "a".repeat(MAX_FIELD_BYTES);
        let line = lines(|| tracing::info!(body = long.as_str(), "m"));
        // The opening quote and 4,095 bytes fit; the last byte and the closing quote are cut.
        assert!(
            line.ends_with("a…(+2 bytes)\n"),
            "{}",
            &line[line.len() - 40..]
        );
        assert_eq!(
            line.len(),
            "m body=".len() + MAX_FIELD_BYTES + "…(+2 bytes)\n".len()
        );
        let fits = "a".repeat(MAX_FIELD_BYTES - 2);
        let line = lines(|| tracing::info!(body = fits.as_str(), "m"));
        assert!(line.ends_with("aa\"\n"), "{}", &line[line.len() - 40..]);
    }
}

//! Text written into a log line under a byte budget: the one way a field is cut, in either log
//! format. Upstream text may echo a whole request, so every field that can carry it is written
//! through a [`Budget`], straight into the line (no string is built for the value).

use std::fmt;

/// A writer that passes on the first `budget` bytes written to it, cut at a character
/// boundary, and counts the rest; [`Budget::finish`] says how much it left out. Once anything
/// is cut, nothing more is passed on (a value is cut once, not thinned out).
pub struct Budget<W: fmt::Write> {
    inner: W,
    left: usize,
    cut: usize,
}

impl<W: fmt::Write> Budget<W> {
    pub fn new(inner: W, budget: usize) -> Budget<W> {
        Budget {
            inner,
            left: budget,
            cut: 0,
        }
    }

    /// Writes `text` whole if it fits in what is left, else counts `stands_for` bytes as cut:
    /// for an escape, which must not be split, standing for `stands_for` bytes of the value.
    pub fn write_whole(&mut self, text: &str, stands_for: usize) -> fmt::Result {
        if self.cut > 0 || text.len() > self.left {
            self.cut += stands_for;
            return Ok(());
        }
        self.left -= text.len();
        self.inner.write_str(text)
    }

    /// Says how many bytes were left out (`…(+N bytes)`), if any.
    pub fn finish(mut self) -> fmt::Result {
        if self.cut > 0 {
            write!(self.inner, "…(+{} bytes)", self.cut)?;
        }
        Ok(())
    }
}

impl<W: fmt::Write> fmt::Write for Budget<W> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        if self.cut > 0 {
            self.cut += text.len();
            return Ok(());
        }
        let mut end = text.len().min(self.left);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        self.left -= end;
        self.cut += text.len() - end;
        self.inner.write_str(&text[..end])
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::fmt::Write as _;

    use super::*;

    fn budgeted(pieces: &[&str], budget: usize) -> String {
        let mut out = String::new();
        let mut writer = Budget::new(&mut out, budget);
        for piece in pieces {
            writer.write_str(piece).unwrap();
        }
        writer.finish().unwrap();
        out
    }

    #[test]
    fn text_within_the_budget_passes_unmarked() {
        assert_eq!(budgeted(&["abc", "de"], 5), "abcde");
        assert_eq!(budgeted(&[], 0), "");
    }

    #[test]
    fn the_rest_is_counted_once_cut_even_pieces_that_would_fit() {
        assert_eq!(budgeted(&["abc", "def", "g"], 4), "abcd…(+3 bytes)");
    }

    #[test]
    fn a_cut_never_splits_a_character() {
        // "é" is two bytes: a budget of 2 keeps "a" and cuts the whole "é".
        assert_eq!(budgeted(&["aé"], 2), "a…(+2 bytes)");
    }

    #[test]
    fn an_escape_is_written_whole_or_counted_as_the_bytes_it_stands_for() {
        let mut out = String::new();
        let mut writer = Budget::new(&mut out, 4);
        writer.write_str("ab").unwrap();
        writer.write_whole("\\n", 1).unwrap();
        writer.write_whole("\\u{1b}", 1).unwrap();
        writer.write_str("c").unwrap();
        writer.finish().unwrap();
        assert_eq!(out, "ab\\n…(+2 bytes)");
    }
}

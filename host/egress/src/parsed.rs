//! The URLs a thread parsed lately, kept parsed. A provider's requests go to the same few URLs
//! (a target's base URL and path), and parsing one with `url` (its host through IDNA) cost
//! ~19,000 instructions per request, more than the rest of building the upstream request; a
//! copy of a kept parse is one string copy. Kept per thread (each event loop sends its own
//! requests), a handful each, only short ones: no lock, no growth.

use std::cell::RefCell;

use url::Url;

/// URLs kept per thread; the oldest is replaced when a new one comes.
const KEPT: usize = 8;
/// Longer URLs are parsed every time (a long one is unlikely to come again).
const MAX_KEPT_LEN: usize = 512;

struct Kept {
    urls: Vec<(Box<str>, Url)>,
    /// The slot the next new URL takes once all are used.
    next: usize,
}

thread_local! {
    static KEPT_URLS: RefCell<Kept> = const {
        RefCell::new(Kept {
            urls: Vec::new(),
            next: 0,
        })
    };
}

/// `text` parsed as a URL: the same as `Url::parse`, from this thread's kept parse of the same
/// text when there is one.
pub(crate) fn parse(text: &str) -> Result<Url, url::ParseError> {
    KEPT_URLS.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((_, url)) = kept.urls.iter().find(|(kept, _)| **kept == *text) {
            return Ok(url.clone());
        }
        let url = Url::parse(text)?;
        if text.len() <= MAX_KEPT_LEN {
            let entry = (Box::from(text), url.clone());
            if kept.urls.len() < KEPT {
                kept.urls.push(entry);
            } else {
                let slot = kept.next;
                kept.urls[slot] = entry;
                kept.next = (slot + 1) % KEPT;
            }
        }
        Ok(url)
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_kept_parse_is_the_parse() {
        for _ in 0..2 {
            for text in [
                "http://127.0.0.1:9101/v1/chat/completions",
                "https://API.Example.com:443/v1/x?alt=sse#f",
                "https://bücher.example/a/../b",
            ] {
                assert_eq!(parse(text).unwrap(), Url::parse(text).unwrap(), "{text}");
            }
        }
        assert_eq!(parse("not a url"), Url::parse("not a url"));
    }

    #[test]
    fn more_urls_than_are_kept_still_parse_each_as_itself() {
        let texts: Vec<String> = (0..KEPT * 3)
            .map(|i| format!("http://h{i}.example/p{i}"))
            .collect();
        for _ in 0..2 {
            for text in &texts {
                assert_eq!(parse(text).unwrap().as_str(), text.as_str());
            }
        }
        KEPT_URLS.with(|kept| assert_eq!(kept.borrow().urls.len(), KEPT));
        let long = format!("http://h.example/{}", "a".repeat(MAX_KEPT_LEN));
        assert_eq!(parse(&long).unwrap().as_str(), long);
        KEPT_URLS.with(|kept| {
            assert!(
                kept.borrow()
                    .urls
                    .iter()
                    .all(|(t, _)| t.len() <= MAX_KEPT_LEN)
            );
        });
    }
}

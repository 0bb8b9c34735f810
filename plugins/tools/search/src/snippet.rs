//! Snippets as plain text: upstreams mark matches with HTML (Brave's `<strong>`), escape
//! entities, and some run long. A model gets the words, shortened.

/// The longest snippet kept.
const MAX_SNIPPET_CHARS: usize = 300;

/// `text` without tags, with the common entities decoded and whitespace collapsed.
pub fn clean(text: &str) -> String {
    let mut plain = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => plain.push(c),
            _ => {}
        }
    }
    let decoded = plain
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most [`MAX_SNIPPET_CHARS`] characters, an ellipsis marking a cut.
pub fn shorten(text: &str) -> String {
    match text.char_indices().nth(MAX_SNIPPET_CHARS) {
        Some((cut, _)) => format!("{}…", text[..cut].trim_end()),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_go_entities_decode_and_long_texts_are_cut() {
        assert_eq!(
            clean("The <strong>SearXNG</strong> &amp; friends:\n  &quot;privacy&quot; &lt;3"),
            "The SearXNG & friends: \"privacy\" <3"
        );
        let long = "word ".repeat(100);
        let short = shorten(&clean(&long));
        assert_eq!(short.chars().count(), 300);
        assert!(short.ends_with('…'));
    }
}

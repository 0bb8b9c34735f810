//! Building request URLs from an endpoint, a path and query parameters, percent-encoding every
//! value (a city named `São Paulo`, a search for `a&b=c`) so arguments can never add parameters
//! or change the path.

/// Percent-encodes `text` for a URL query value or path segment: everything but RFC 3986's
/// unreserved characters (`A-Z a-z 0-9 - . _ ~`) becomes `%XX` of its UTF-8 bytes.
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            out.push(HEX[usize::from(byte >> 4)]);
            out.push(HEX[usize::from(byte & 0xf)]);
        }
    }
    out
}

const HEX: [char; 16] = [
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', 'A', 'B', 'C', 'D', 'E', 'F',
];

/// A URL being built: `Url::new(endpoint, "/v1/search").param("name", city).build()`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Url {
    url: String,
    has_query: bool,
}

impl Url {
    /// `endpoint` (any trailing `/` dropped) followed by `path` (which starts with `/`).
    pub fn new(endpoint: &str, path: &str) -> Url {
        let url = format!("{}{path}", endpoint.trim_end_matches('/'));
        let has_query = url.contains('?');
        Url { url, has_query }
    }

    /// Adds `name=value`, the value percent-encoded.
    pub fn param(mut self, name: &str, value: impl AsRef<str>) -> Url {
        self.url.push(if self.has_query { '&' } else { '?' });
        self.has_query = true;
        self.url.push_str(&encode(name));
        self.url.push('=');
        self.url.push_str(&encode(value.as_ref()));
        self
    }

    /// Adds `name=value` when there is a value.
    pub fn param_opt(self, name: &str, value: Option<impl AsRef<str>>) -> Url {
        match value {
            Some(value) => self.param(name, value),
            None => self,
        }
    }

    pub fn build(self) -> String {
        self.url
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_cannot_add_parameters_or_change_the_path() {
        assert_eq!(encode("São Paulo"), "S%C3%A3o%20Paulo");
        assert_eq!(encode("a&b=c/d?e#f+g"), "a%26b%3Dc%2Fd%3Fe%23f%2Bg");
        assert_eq!(encode("AZaz09-._~"), "AZaz09-._~");
    }

    #[test]
    fn parameters_join_with_question_mark_then_ampersand() {
        let url = Url::new("http://127.0.0.1:9/", "/v1/search")
            .param("name", "New York")
            .param_opt("count", Some("1"))
            .param_opt("language", None::<&str>)
            .build();
        assert_eq!(url, "http://127.0.0.1:9/v1/search?name=New%20York&count=1");
        let more = Url::new("http://h/base?x=1", "").param("y", "2").build();
        assert_eq!(more, "http://h/base?x=1&y=2");
    }
}

//! Outbound HTTP for tool plugins: the host's `outbound.send` in plain types, and `get` /
//! `post_json` that build the request. The host sends it only to the call's upstream origins,
//! adds the credential itself and follows no redirect; a refused or failed send comes back as
//! the host's classified [`Failure`].
//!
//! Natively (plugins' unit tests) there is no host: `testing::Upstream` (feature `testing`)
//! answers in its place, on the test's own thread; without one a send is `unavailable`.

use serde_json::Value;

use crate::types::{Failure, Header, HttpRequest, HttpResponse};

/// Sends `request` through the host.
pub fn send(request: HttpRequest) -> Result<HttpResponse, Failure> {
    #[cfg(target_arch = "wasm32")]
    {
        host::send(request)
    }
    #[cfg(not(target_arch = "wasm32"))]
    {
        native::send(request)
    }
}

/// `GET url` with these headers (besides the credential, which the host adds).
pub fn get(url: &str, headers: &[(&str, &str)]) -> Result<HttpResponse, Failure> {
    send(request("GET", url, headers, Vec::new()))
}

/// `POST url` with `body` as JSON (`content-type: application/json` added).
pub fn post_json(
    url: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> Result<HttpResponse, Failure> {
    let mut request = request("POST", url, headers, body.to_string().into_bytes());
    request
        .headers
        .push(Header::new("content-type", "application/json"));
    send(request)
}

/// A request with `accept: application/json` unless `headers` name another.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Vec<u8>) -> HttpRequest {
    let mut all: Vec<Header> = headers
        .iter()
        .map(|(name, value)| Header::new(*name, *value))
        .collect();
    if !all.iter().any(|h| h.name.eq_ignore_ascii_case("accept")) {
        all.push(Header::new("accept", "application/json"));
    }
    HttpRequest {
        method: method.to_owned(),
        url: url.to_owned(),
        headers: all,
        body,
    }
}

#[cfg(target_arch = "wasm32")]
mod host {
    use crate::bindings::aigw::plugin::types as wit;
    use crate::tool_bindings::aigw::plugin::outbound;
    use crate::types::{Failure, Header, HttpRequest, HttpResponse};

    pub(super) fn send(request: HttpRequest) -> Result<HttpResponse, Failure> {
        let request = wit::HttpRequest {
            method: request.method,
            url: request.url,
            headers: request
                .headers
                .into_iter()
                .map(|h| wit::Header {
                    name: h.name,
                    value: h.value,
                })
                .collect(),
            body: request.body,
        };
        match outbound::send(&request) {
            Ok(response) => Ok(HttpResponse {
                status: response.status,
                headers: response
                    .headers
                    .into_iter()
                    .map(|h| Header::new(h.name, h.value))
                    .collect(),
                body: response.body,
            }),
            Err(failure) => Err(crate::export::failure_from_wit(failure)),
        }
    }
}

/// The test double's slot. It exists on wasm32 too, so plugins' tests (and `testing::Upstream`)
/// compile for every target; only native builds send through it.
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) mod native {
    use std::cell::RefCell;

    use crate::types::{Failure, HttpRequest, HttpResponse};

    /// What answers in the host's place on this thread.
    pub(crate) type Sender = Box<dyn FnMut(&HttpRequest) -> Result<HttpResponse, Failure>>;

    thread_local! {
        pub(crate) static SENDER: RefCell<Option<Sender>> = const { RefCell::new(None) };
        pub(crate) static SENT: RefCell<Vec<HttpRequest>> = const { RefCell::new(Vec::new()) };
    }

    pub(super) fn send(request: HttpRequest) -> Result<HttpResponse, Failure> {
        SENT.with(|sent| sent.borrow_mut().push(request.clone()));
        SENDER.with(|sender| match sender.borrow_mut().as_mut() {
            Some(answer) => answer(&request),
            None => Err(Failure::Unavailable(
                "no host to send through outside a component".to_owned(),
            )),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_asks_for_json_unless_told_otherwise() {
        let plain = request("GET", "http://x/", &[("x-a", "1")], Vec::new());
        assert_eq!(plain.headers.len(), 2);
        assert!(
            plain
                .headers
                .iter()
                .any(|h| h.name == "accept" && h.value == "application/json")
        );
        let csv = request("GET", "http://x/", &[("Accept", "text/csv")], Vec::new());
        assert_eq!(csv.headers, vec![Header::new("Accept", "text/csv")]);
    }

    #[test]
    fn without_a_host_a_send_is_unavailable() {
        let failure = get("http://127.0.0.1:9/", &[]).unwrap_err();
        assert!(matches!(failure, Failure::Unavailable(_)), "{failure:?}");
    }
}

//! A scripted upstream on a loopback port: it records each request it receives, then answers
//! it as the test says (a fixed answer, silence, a body in pieces, a body cut short).

use std::future::Future;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, mpsc};

/// One request as the upstream read it off the socket.
#[derive(Debug)]
pub struct Received {
    pub method: String,
    /// Path and query, as sent.
    pub target: String,
    /// Names lowercased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Upstream {
    pub origin: String,
    received: mpsc::UnboundedReceiver<Received>,
}

impl Upstream {
    /// Serves every connection: reads one request, records it, then hands the socket to
    /// `answer`.
    pub async fn start<F, Fut>(answer: F) -> Upstream
    where
        F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = match TcpListener::bind("127.0.0.1:0").await {
            Ok(listener) => listener,
            Err(e) => panic!("cannot bind a loopback port: {e}"),
        };
        let origin = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("{e}"),
        };
        let (record, received) = mpsc::unbounded_channel();
        let answer = Arc::new(answer);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let record = record.clone();
                let answer = Arc::clone(&answer);
                tokio::spawn(async move {
                    if let Some(request) = read_request(&mut stream).await {
                        let _ = record.send(request);
                        answer(stream).await;
                    }
                });
            }
        });
        Upstream { origin, received }
    }

    /// Answers every request with `response` (raw HTTP/1.1 bytes) and closes the connection.
    pub async fn answering(response: impl Into<Vec<u8>>) -> Upstream {
        let response: Arc<Vec<u8>> = Arc::new(response.into());
        Upstream::start(move |mut stream| {
            let response = Arc::clone(&response);
            async move {
                let _ = stream.write_all(&response).await;
                let _ = stream.shutdown().await;
            }
        })
        .await
    }

    /// Answers `200 OK` with `body`.
    pub async fn ok(body: &str) -> Upstream {
        Upstream::answering(format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        ))
        .await
    }

    /// Reads the request and never answers, holding the connection until the client drops it.
    pub async fn silent() -> Upstream {
        Upstream::start(|mut stream| async move {
            let mut rest = Vec::new();
            let _ = stream.read_to_end(&mut rest).await;
        })
        .await
    }

    /// Sends the head and `first`, waits until the test calls `go.notify_one()`, then sends
    /// `second` and closes.
    pub async fn in_two_pieces(
        first: &'static str,
        second: &'static str,
        go: Arc<Notify>,
    ) -> Upstream {
        Upstream::start(move |mut stream| {
            let go = Arc::clone(&go);
            async move {
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    first.len() + second.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(first.as_bytes()).await;
                let _ = stream.flush().await;
                go.notified().await;
                let _ = stream.write_all(second.as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        })
        .await
    }

    /// The next request this upstream received.
    pub async fn next_request(&mut self) -> Received {
        match self.received.recv().await {
            Some(request) => request,
            None => panic!("the upstream stopped"),
        }
    }
}

/// A loopback port that listens but never accepts: whether anything connected to it shows in
/// its backlog, without waiting for anything.
pub struct Untouched {
    pub origin: String,
    listener: std::net::TcpListener,
}

impl Untouched {
    pub fn new() -> Untouched {
        let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
            Ok(listener) => listener,
            Err(e) => panic!("cannot bind a loopback port: {e}"),
        };
        if let Err(e) = listener.set_nonblocking(true) {
            panic!("{e}");
        }
        let origin = match listener.local_addr() {
            Ok(addr) => format!("http://{addr}"),
            Err(e) => panic!("{e}"),
        };
        Untouched { origin, listener }
    }

    /// Whether a connection was ever made: the kernel completes the handshake into the
    /// backlog on its own, so a connection that happened is there to accept.
    pub fn was_connected(&self) -> bool {
        match self.listener.accept() {
            Ok(_) => true,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => false,
            Err(e) => panic!("{e}"),
        }
    }
}

/// A loopback origin where nothing listens (bound, then closed).
pub fn refusing_origin() -> String {
    let listener = match std::net::TcpListener::bind("127.0.0.1:0") {
        Ok(listener) => listener,
        Err(e) => panic!("cannot bind a loopback port: {e}"),
    };
    match listener.local_addr() {
        Ok(addr) => format!("http://{addr}"),
        Err(e) => panic!("{e}"),
    }
}

async fn read_request(stream: &mut TcpStream) -> Option<Received> {
    let mut buffer = Vec::new();
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut piece = [0u8; 4096];
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&piece[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = buffer[head_end + 4..].to_vec();
    while body.len() < length {
        let mut piece = [0u8; 4096];
        let n = stream.read(&mut piece).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&piece[..n]);
    }
    Some(Received {
        method,
        target,
        headers,
        body,
    })
}

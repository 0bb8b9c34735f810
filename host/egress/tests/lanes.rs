//! Lanes (`aigw_egress::lane`): a thread that entered one sends through pools of its own, so
//! an upstream connection is only ever driven by the event loop that opened it; other threads
//! share the egress's pools.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aigw_egress::{Egress, Grants, Origin, Request, SendOptions, lane};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

const CONNECT: Duration = Duration::from_secs(5);
const WHOLE: Duration = Duration::from_secs(10);

/// Which sender (its `x-sender` header) each connection carried requests of, by connection.
type Carried = Arc<Mutex<BTreeMap<usize, BTreeSet<String>>>>;

/// A kept-alive upstream answering `ok` to every request, recording the senders of each
/// connection it accepted.
async fn recording_upstream() -> (String, Carried) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let carried = Carried::default();
    let record = Arc::clone(&carried);
    tokio::spawn(async move {
        let mut accepted = 0;
        while let Ok((mut stream, _)) = listener.accept().await {
            accepted += 1;
            let connection = accepted;
            let record = Arc::clone(&record);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut piece = [0u8; 1024];
                loop {
                    // Requests are bodiless GETs: one ends at its blank line.
                    let end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        match stream.read(&mut piece).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&piece[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                    let sender = head
                        .lines()
                        .find_map(|l| l.strip_prefix("x-sender: "))
                        .unwrap_or("")
                        .to_owned();
                    record
                        .lock()
                        .unwrap()
                        .entry(connection)
                        .or_default()
                        .insert(sender);
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (origin, carried)
}

/// Three requests one after another through `egress`, each answer read to its end.
async fn three_requests(egress: &Egress, origin: &str, sender: &str) {
    let grants = Grants::new([Origin::of(origin).unwrap()]);
    for _ in 0..3 {
        let request = Request {
            method: "GET".into(),
            url: format!("{origin}/v1/models"),
            headers: vec![("x-sender".into(), sender.into())],
            body: Vec::new(),
        };
        let options = SendOptions {
            grants: &grants,
            credential: None,
            connect_timeout: CONNECT,
            timeout: WHOLE,
        };
        let response = egress.send(request, options).await.unwrap();
        assert_eq!(response.status, 200);
        assert_eq!(response.body.collect(1 << 10).await.unwrap(), b"ok");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn each_lane_has_pools_of_its_own_and_other_threads_share_the_egresss() {
    let (origin, carried) = recording_upstream().await;
    let egress = Egress::new([CONNECT]).unwrap();

    // Off a lane: the egress's own pool (its idle connection is there for the lanes to take,
    // were they sharing it).
    assert!(!lane::is_lane());
    three_requests(&egress, &origin, "main").await;

    // Two lanes, each a thread with its own single-threaded loop, at once.
    let lanes: Vec<_> = ["lane-a", "lane-b"]
        .into_iter()
        .enumerate()
        .map(|(index, sender)| {
            let egress = egress.clone();
            let origin = origin.clone();
            std::thread::spawn(move || {
                lane::enter(index);
                assert_eq!(lane::current(), Some(index));
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(three_requests(&egress, &origin, sender));
            })
        })
        .collect();
    for lane in lanes {
        lane.join().unwrap();
    }
    // The shared pool is still the main thread's.
    three_requests(&egress, &origin, "main").await;

    let carried = carried.lock().unwrap().clone();
    // No connection ever carried two senders' requests: each lane opened its own.
    for (connection, senders) in &carried {
        assert_eq!(
            senders.len(),
            1,
            "connection {connection} carried {senders:?}"
        );
    }
    let senders: BTreeSet<&String> = carried.values().flatten().collect();
    assert_eq!(
        senders.into_iter().collect::<Vec<_>>(),
        ["lane-a", "lane-b", "main"]
    );
}

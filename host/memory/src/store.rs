//! The store's threads: one writer that commits the writes arriving together as one transaction,
//! and readers beside it. Work is a closure over a [`Connection`], run on the store's own
//! thread (on a current-thread runtime of its own: libsql's local calls block), never on a
//! tokio worker.
//!
//! Group commit: the writer takes a write, then every write already waiting (up to
//! `max_batch`), opens one `BEGIN IMMEDIATE` transaction, runs each inside its own savepoint (a
//! write that fails is rolled back alone, the others stand), commits once, and only then answers
//! them all. With WAL, readers see the last committed state and never wait for the writer.

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use futures_util::future::LocalBoxFuture;
use libsql::Connection;
use tokio::sync::oneshot;

use crate::clock::{Clock, SystemClock};
use crate::migrations;

/// What an acknowledged write survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// The gateway's crash or `kill -9`, always: a commit is in the WAL file before it is
    /// acknowledged. A power loss or kernel crash may lose the last commits (SQLite
    /// `synchronous = NORMAL` in WAL mode: the WAL is fsynced at checkpoints only).
    #[default]
    Process,
    /// Power loss too: every commit is fsynced before it is acknowledged (`synchronous = FULL`),
    /// which costs one fsync per batch of writes.
    Power,
}

impl Durability {
    /// Every setting, for the config.
    pub const ALL: [Durability; 2] = [Durability::Process, Durability::Power];

    /// Its name in the config (`[memory] durability`).
    pub fn name(self) -> &'static str {
        match self {
            Durability::Process => "process",
            Durability::Power => "power",
        }
    }

    fn pragma(self) -> &'static str {
        match self {
            Durability::Process => "NORMAL",
            Durability::Power => "FULL",
        }
    }
}

/// How the store is opened.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// The database file (created if missing).
    pub path: PathBuf,
    pub durability: Durability,
    /// How long a statement waits for a lock held by another process on the same file.
    pub busy_timeout: Duration,
    /// Reader threads.
    pub readers: usize,
    /// The most writes one transaction commits.
    pub max_batch: usize,
    /// The largest conversation item (its JSON) the store accepts, whoever writes it.
    pub max_item_bytes: usize,
    /// Where "now" comes from (expiry of entries); the system clock but in tests.
    pub clock: Arc<dyn Clock>,
    /// How often the binary's sweeper deletes expired entries (`[memory] sweep_interval_secs`).
    pub sweep_interval: Duration,
}

impl StoreOptions {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> StoreOptions {
        StoreOptions {
            path: path.into(),
            durability: Durability::default(),
            busy_timeout: Duration::from_secs(5),
            readers: 2,
            max_batch: 256,
            max_item_bytes: 1 << 20,
            clock: Arc::new(SystemClock),
            sweep_interval: Duration::from_secs(60),
        }
    }
}

/// Why a store call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database file could not be opened or set up.
    #[error("memory store {path}: {message}")]
    Open { path: String, message: String },
    /// The file's schema is newer than this binary's.
    #[error(
        "the memory store's schema is version {found}, newer than this aigw knows ({known}): \
         run a newer aigw, or point [memory] path at another file"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("memory store: migration {version} failed: {message}")]
    Migration { version: i64, message: String },
    /// The database is locked past the busy timeout, the disk is full, or it refused a write:
    /// retry later.
    #[error("memory store unavailable: {0}")]
    Unavailable(String),
    /// Any other SQLite error.
    #[error("memory store: {0}")]
    Sql(String),
    /// The store's threads are gone (the store was dropped, or a thread died).
    #[error("memory store is closed")]
    Closed,
}

impl From<libsql::Error> for StoreError {
    fn from(error: libsql::Error) -> StoreError {
        // By primary result code (the low byte of an extended one): SQLITE_BUSY (5),
        // SQLITE_LOCKED (6), SQLITE_IOERR (10: a write the file system refused, e.g. a file size
        // limit), SQLITE_FULL (13). The store is fine, the moment is not.
        match &error {
            libsql::Error::SqliteFailure(code, _) if matches!(code & 0xff, 5 | 6 | 10 | 13) => {
                StoreError::Unavailable(error.to_string())
            }
            _ => StoreError::Sql(error.to_string()),
        }
    }
}

/// Upper bounds of the operation-duration buckets, in microseconds: a read is tens of
/// microseconds, a write waits for its batch's commit (an fsync with `Durability::Full`).
pub const OPERATION_DURATION_BOUNDS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 1_000_000,
];

/// Buckets kept: one per bound, then the ones past the last.
const BUCKETS: usize = OPERATION_DURATION_BOUNDS_US.len() + 1;

/// Counters of the writer and the readers, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Writes run.
    pub writes: u64,
    /// Transactions committed (or rolled back) for them.
    pub batches: u64,
    /// Reads asked for.
    pub reads: u64,
    /// Answered reads and writes per bucket of [`OPERATION_DURATION_BOUNDS_US`] (not
    /// cumulative), from the call to the answer (queueing and, for a write, its commit).
    pub read_buckets: [u64; BUCKETS],
    pub write_buckets: [u64; BUCKETS],
    /// Their total time.
    pub read_time: Duration,
    pub write_time: Duration,
}

#[derive(Default)]
struct Counters {
    writes: AtomicU64,
    batches: AtomicU64,
    reads: AtomicU64,
    reads_timed: Timed,
    writes_timed: Timed,
}

/// Durations in buckets, in plain atomics (the store knows nothing of the metrics' format).
#[derive(Default)]
struct Timed {
    buckets: [AtomicU64; BUCKETS],
    total_ns: AtomicU64,
}

impl Timed {
    fn since(&self, started: Instant) {
        let took = started.elapsed();
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = OPERATION_DURATION_BOUNDS_US
            .iter()
            .position(|bound| us <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.total_ns.fetch_add(ns, Ordering::Relaxed);
    }

    fn buckets(&self) -> [u64; BUCKETS] {
        std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed))
    }

    fn total(&self) -> Duration {
        Duration::from_nanos(self.total_ns.load(Ordering::Relaxed))
    }
}

/// A write as the writer thread runs it, whatever it returns.
trait WriteJob: Send {
    /// Runs the write; the result says whether it failed (its savepoint is then rolled back),
    /// and the reply is sent once the batch's commit is known.
    fn run<'c>(self: Box<Self>, connection: &'c Connection) -> LocalBoxFuture<'c, Ran>;
    /// Answers without running (the batch's transaction could not begin).
    fn refuse(self: Box<Self>, error: StoreError);
}

struct Ran {
    /// The write's own error, if it failed.
    failed: Option<StoreError>,
    reply: Box<dyn FnOnce(Result<(), StoreError>) + Send>,
}

struct Typed<T, F> {
    work: F,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> WriteJob for Typed<T, F>
where
    T: Send + 'static,
    F: for<'c> FnOnce(&'c Connection) -> LocalBoxFuture<'c, Result<T, StoreError>> + Send + 'static,
{
    fn run<'c>(self: Box<Self>, connection: &'c Connection) -> LocalBoxFuture<'c, Ran> {
        let Typed { work, reply } = *self;
        Box::pin(async move {
            let result = work(connection).await;
            let failed = result.as_ref().err().cloned();
            Ran {
                failed,
                reply: Box::new(move |committed| {
                    let answer = match (result, committed) {
                        (Err(e), _) | (Ok(_), Err(e)) => Err(e),
                        (Ok(value), Ok(())) => Ok(value),
                    };
                    let _ = reply.send(answer);
                }),
            }
        })
    }

    fn refuse(self: Box<Self>, error: StoreError) {
        let _ = self.reply.send(Err(error));
    }
}

type ReadJob = Box<dyn for<'c> FnOnce(&'c Connection) -> LocalBoxFuture<'c, ()> + Send>;

/// The memory store: send it reads and writes, await their answers.
pub struct Store {
    writes: mpsc::Sender<Box<dyn WriteJob>>,
    reads: mpsc::Sender<ReadJob>,
    counters: Arc<Counters>,
    max_item_bytes: usize,
    clock: Arc<dyn Clock>,
    /// The database file, whose size the metrics read.
    path: PathBuf,
}

impl Store {
    /// Opens (creating if needed) the database, applies the migrations on the writer thread,
    /// and starts the readers. Fails with [`StoreError::NewerSchema`] on a newer database.
    pub async fn open(options: StoreOptions) -> Result<Store, StoreError> {
        let counters = Arc::new(Counters::default());
        let (writes, write_queue) = mpsc::channel::<Box<dyn WriteJob>>();
        let (opened_tx, opened) = oneshot::channel();
        let writer_options = options.clone();
        let writer_counters = Arc::clone(&counters);
        spawn("aigw-memory-writer", move || {
            writer(writer_options, write_queue, writer_counters, opened_tx)
        })?;
        opened.await.map_err(|_| StoreError::Closed)??;

        let (reads, read_queue) = mpsc::channel::<ReadJob>();
        let read_queue = Arc::new(Mutex::new(read_queue));
        for n in 0..options.readers.max(1) {
            let (ready_tx, ready) = oneshot::channel();
            let queue = Arc::clone(&read_queue);
            let reader_options = options.clone();
            spawn(&format!("aigw-memory-reader-{n}"), move || {
                reader(reader_options, queue, ready_tx)
            })?;
            ready.await.map_err(|_| StoreError::Closed)??;
        }
        Ok(Store {
            writes,
            reads,
            counters,
            max_item_bytes: options.max_item_bytes,
            clock: options.clock,
            path: options.path,
        })
    }

    /// Runs `work` on the writer thread inside the next batch's transaction and answers once
    /// that transaction committed. The write is queued when this is called, not when the
    /// future is first polled, so writes keep the order of the calls.
    pub fn write<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + use<T, F>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Connection) -> LocalBoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        let started = Instant::now();
        let counters = Arc::clone(&self.counters);
        let (reply, answer) = oneshot::channel();
        let sent = self.writes.send(Box::new(Typed { work, reply }));
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            let answered = answer.await.map_err(|_| StoreError::Closed)?;
            counters.writes_timed.since(started);
            answered
        }
    }

    /// Runs `work` on a reader thread against the last committed state.
    pub fn read<T, F>(&self, work: F) -> impl Future<Output = Result<T, StoreError>> + use<T, F>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c Connection) -> LocalBoxFuture<'c, Result<T, StoreError>>
            + Send
            + 'static,
    {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        let job: ReadJob = Box::new(move |connection| {
            Box::pin(async move {
                let _ = reply.send(work(connection).await);
            })
        });
        let sent = self.reads.send(job);
        let started = Instant::now();
        let counters = Arc::clone(&self.counters);
        async move {
            sent.map_err(|_| StoreError::Closed)?;
            let answered = answer.await.map_err(|_| StoreError::Closed)?;
            counters.reads_timed.since(started);
            answered
        }
    }

    /// The largest conversation item this store accepts, in bytes of JSON.
    pub fn max_item_bytes(&self) -> usize {
        self.max_item_bytes
    }

    /// Now, by the store's clock, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// What the writer has done so far.
    pub fn stats(&self) -> Stats {
        Stats {
            writes: self.counters.writes.load(Ordering::Relaxed),
            batches: self.counters.batches.load(Ordering::Relaxed),
            reads: self.counters.reads.load(Ordering::Relaxed),
            read_buckets: self.counters.reads_timed.buckets(),
            write_buckets: self.counters.writes_timed.buckets(),
            read_time: self.counters.reads_timed.total(),
            write_time: self.counters.writes_timed.total(),
        }
    }

    /// The database file and its write-ahead log, in bytes on disk now (0 for a file that
    /// cannot be read).
    pub fn database_bytes(&self) -> u64 {
        let size = |path: &std::path::Path| std::fs::metadata(path).map_or(0, |m| m.len());
        let mut wal = self.path.clone().into_os_string();
        wal.push("-wal");
        size(&self.path) + size(std::path::Path::new(&wal))
    }
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> Result<(), StoreError> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(run)
        .map(drop)
        .map_err(|e| StoreError::Open {
            path: String::new(),
            message: format!("cannot start the {name} thread: {e}"),
        })
}

/// A runtime for one store thread: libsql's local calls complete without a reactor.
fn runtime() -> Result<tokio::runtime::Runtime, StoreError> {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(|e| StoreError::Open {
            path: String::new(),
            message: format!("cannot build the store thread's runtime: {e}"),
        })
}

/// Opens one connection to the file, set up as every store connection is.
async fn connect(options: &StoreOptions, read_only: bool) -> Result<Connection, StoreError> {
    let open_error = |message: String| StoreError::Open {
        path: options.path.display().to_string(),
        message,
    };
    let database = libsql::Builder::new_local(&options.path)
        .build()
        .await
        .map_err(|e| open_error(e.to_string()))?;
    let connection = database.connect().map_err(|e| open_error(e.to_string()))?;
    connection
        .busy_timeout(options.busy_timeout)
        .map_err(|e| open_error(e.to_string()))?;
    // `journal_mode` answers with a row: it must be read to take effect.
    let mut rows = connection
        .query("PRAGMA journal_mode = WAL", ())
        .await
        .map_err(|e| open_error(e.to_string()))?;
    let mode = match rows.next().await.map_err(|e| open_error(e.to_string()))? {
        Some(row) => row.get::<String>(0).unwrap_or_default(),
        None => String::new(),
    };
    drop(rows);
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(open_error(format!(
            "the file cannot be put in WAL mode (journal mode is {mode:?})"
        )));
    }
    let pragmas = format!(
        "PRAGMA synchronous = {}; PRAGMA foreign_keys = ON;{}",
        options.durability.pragma(),
        if read_only {
            " PRAGMA query_only = ON;"
        } else {
            ""
        }
    );
    connection
        .execute_batch(&pragmas)
        .await
        .map_err(|e| open_error(e.to_string()))?;
    Ok(connection)
}

fn writer(
    options: StoreOptions,
    queue: mpsc::Receiver<Box<dyn WriteJob>>,
    counters: Arc<Counters>,
    opened: oneshot::Sender<Result<(), StoreError>>,
) {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    let connection = runtime.block_on(async {
        let connection = connect(&options, false).await?;
        migrations::apply(&connection).await?;
        Ok::<_, StoreError>(connection)
    });
    let connection = match connection {
        Ok(connection) => {
            let _ = opened.send(Ok(()));
            connection
        }
        Err(e) => {
            let _ = opened.send(Err(e));
            return;
        }
    };
    // Ends when the store (every sender) is dropped.
    while let Ok(first) = queue.recv() {
        let mut batch = vec![first];
        while batch.len() < options.max_batch.max(1) {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        counters
            .writes
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
        runtime.block_on(commit(&connection, batch));
    }
}

/// Runs a batch of writes in one transaction, each in its own savepoint, and answers them once
/// the commit is known.
async fn commit(connection: &Connection, batch: Vec<Box<dyn WriteJob>>) {
    if let Err(e) = connection.execute("BEGIN IMMEDIATE", ()).await {
        let error = StoreError::from(e);
        for job in batch {
            job.refuse(error.clone());
        }
        return;
    }
    let mut replies = Vec::with_capacity(batch.len());
    let mut broken: Option<StoreError> = None;
    for job in batch {
        if let Some(error) = &broken {
            // Whatever broke the transaction (a full disk, a lock) is this write's answer too.
            job.refuse(error.clone());
            continue;
        }
        if let Err(e) = connection.execute("SAVEPOINT write", ()).await {
            let error = StoreError::from(e);
            job.refuse(error.clone());
            broken = Some(error);
            continue;
        }
        let ran = job.run(connection).await;
        let ended = match &ran.failed {
            // On SQLITE_FULL, IOERR, BUSY or NOMEM SQLite may roll back the whole transaction,
            // not only the statement: then the batch is gone, and every write in it fails.
            Some(error) if connection.is_autocommit() => Err(error.clone()),
            Some(_) => connection
                .execute_batch("ROLLBACK TO write; RELEASE write;")
                .await
                .map(drop)
                .map_err(StoreError::from),
            None => connection
                .execute("RELEASE write", ())
                .await
                .map(drop)
                .map_err(StoreError::from),
        };
        if let Err(e) = ended {
            broken = Some(e);
        }
        replies.push(ran.reply);
    }
    let committed = match broken {
        Some(error) => Err(error),
        None => connection
            .execute("COMMIT", ())
            .await
            .map(drop)
            .map_err(StoreError::from),
    };
    if committed.is_err() {
        // Nothing of the batch stands; the connection is left outside any transaction.
        let _ = connection.execute("ROLLBACK", ()).await;
    }
    for reply in replies {
        reply(committed.clone());
    }
}

fn reader(
    options: StoreOptions,
    queue: Arc<Mutex<mpsc::Receiver<ReadJob>>>,
    ready: oneshot::Sender<Result<(), StoreError>>,
) {
    let runtime = match runtime() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let connection = match runtime.block_on(connect(&options, true)) {
        Ok(connection) => {
            let _ = ready.send(Ok(()));
            connection
        }
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    loop {
        // One reader waits on the queue, the others on the lock; a poisoned lock still holds a
        // usable receiver.
        let next = queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .recv();
        let Ok(job) = next else { return };
        runtime.block_on(job(&connection));
    }
}

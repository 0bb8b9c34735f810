//! Where log lines are written: stderr. A thread that serves connections (a server event loop,
//! `aigw_server::Workers`) gathers its lines and writes them together when the loop is about to
//! wait for events, or once [`BATCH_BYTES`] have gathered; any other thread writes each line
//! as it comes. A `write` per request line was ~5 % of a small request's CPU (the system call
//! and the file system's path under it), and a loop under load writes dozens of lines at once.
//! A line waits at most for its loop's busy spell to end (about a millisecond at full load;
//! at once when the loop idles), so an operator tailing the log sees no delay; what a loop had
//! gathered is lost only if the process dies abruptly mid-spell (a `SIGKILL`), and lines stay
//! whole (each write is whole lines).

use std::cell::RefCell;
use std::io::{self, Write};

use tracing_subscriber::fmt::MakeWriter;

/// A loop writes what it gathered once it holds this much, even if it is still busy.
pub(crate) const BATCH_BYTES: usize = 32 << 10;

thread_local! {
    static GATHERED: RefCell<Gathered> = const { RefCell::new(Gathered(Vec::new())) };
}

/// A loop's lines not yet written; written when the thread ends too.
struct Gathered(Vec<u8>);

impl Gathered {
    fn write_out(&mut self) {
        if !self.0.is_empty() {
            // As with a line written at once, a log that cannot be written is not an error
            // anybody could act on.
            let _ = sink(&self.0);
            self.0.clear();
        }
    }
}

#[cfg(not(test))]
fn sink(bytes: &[u8]) -> io::Result<()> {
    io::stderr().write_all(bytes)
}

#[cfg(test)]
thread_local! {
    /// What the tests' loops wrote, in place of stderr.
    static WRITTEN: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

#[cfg(test)]
fn sink(bytes: &[u8]) -> io::Result<()> {
    WRITTEN.with(|w| w.borrow_mut().extend_from_slice(bytes));
    Ok(())
}

impl Drop for Gathered {
    fn drop(&mut self) {
        self.write_out();
    }
}

/// Writes what the calling loop gathered: its hook for "about to wait for events".
pub(crate) fn flush_thread() {
    let _ = GATHERED.try_with(|gathered| {
        if let Ok(mut gathered) = gathered.try_borrow_mut() {
            gathered.write_out();
        }
    });
}

/// The log layer's writer.
pub(crate) struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// One line's writer: into the loop's batch on a server event loop, else straight to stderr.
pub(crate) struct Line;

impl Write for Line {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        if aigw_egress::lane::is_lane() {
            let gathered = GATHERED.try_with(|gathered| {
                let Ok(mut gathered) = gathered.try_borrow_mut() else {
                    return false;
                };
                gathered.0.extend_from_slice(bytes);
                if gathered.0.len() >= BATCH_BYTES {
                    gathered.write_out();
                }
                true
            });
            if gathered == Ok(true) {
                return Ok(bytes.len());
            }
        }
        io::stderr().write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stderr().flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn gathered() -> usize {
        GATHERED.with(|g| g.borrow().0.len())
    }

    fn written() -> Vec<u8> {
        WRITTEN.with(|w| w.borrow().clone())
    }

    #[test]
    fn a_loop_gathers_its_lines_until_it_waits_or_holds_a_batch() {
        std::thread::spawn(|| {
            aigw_egress::lane::enter(0);
            let line = b"log_batch test: a gathered line\n";
            Line.write_all(line).unwrap();
            Line.write_all(line).unwrap();
            assert_eq!(gathered(), 2 * line.len(), "held, not written");
            assert!(written().is_empty());
            flush_thread();
            assert_eq!(gathered(), 0);
            assert_eq!(
                written(),
                [&line[..], line].concat(),
                "written when about to wait"
            );
            // A busy loop writes once it holds a batch.
            let long = vec![b'.'; BATCH_BYTES - 1];
            Line.write_all(&long).unwrap();
            assert_eq!(gathered(), BATCH_BYTES - 1);
            Line.write_all(b"\n").unwrap();
            assert_eq!(gathered(), 0);
            assert_eq!(
                written().len(),
                2 * line.len() + BATCH_BYTES,
                "one write of the batch"
            );
        })
        .join()
        .unwrap();
    }

    #[test]
    fn any_other_thread_writes_each_line_as_it_comes() {
        std::thread::spawn(|| {
            Line.write_all(b"log_batch test: a line written at once\n")
                .unwrap();
            assert_eq!(gathered(), 0);
            assert!(
                written().is_empty(),
                "straight to stderr, not through a batch"
            );
        })
        .join()
        .unwrap();
    }
}

//! Lanes: upstream connection pools of a thread's own. The server serves connections on a
//! few single-threaded event loops, one per core (`aigw-server`'s `workers`). A pooled upstream
//! connection is a task on the loop that opened it; were the pools shared, a request on one
//! loop would often take a connection another loop drives, and every exchange on it would wake
//! that other thread (a futex, an interrupt between cores, and the work moved to a cold cache:
//! the scheduler was the largest single cost of a small request). A thread that calls
//! [`enter`] is a lane: every [`Egress`](crate::Egress) gives it clients (and so pools) of its
//! own, made the first time the lane sends through that egress. Any other thread (the main
//! runtime's background work, tests) shares the egress's own clients, as before. The lane's
//! number is there for whatever else keeps per-loop state (the runtime's stream-decoder hosts).

use std::cell::{Cell, RefCell};
use std::sync::{Arc, Weak};

use crate::egress::Clients;

thread_local! {
    static LANE: Cell<Option<usize>> = const { Cell::new(None) };
    /// This lane's clients for each live egress, found by the egress's address (a handful:
    /// one per served state, old ones dropped as states are swapped).
    static OWN: RefCell<Vec<(Weak<Clients>, Arc<Clients>)>> = const { RefCell::new(Vec::new()) };
}

/// Makes the calling thread lane number `index`: from now on it sends through clients of its
/// own. For a thread that runs one single-threaded event loop for its whole life.
pub fn enter(index: usize) {
    LANE.with(|lane| lane.set(Some(index)));
}

/// The calling thread's lane number, if it is one.
pub fn current() -> Option<usize> {
    LANE.with(Cell::get)
}

/// Whether the calling thread is a lane.
pub fn is_lane() -> bool {
    current().is_some()
}

/// The clients to send `shared`'s requests through on this thread: `shared` itself off a
/// lane, else this lane's own copy of it (made now if it has none; `shared` if it cannot be).
pub(crate) fn clients(shared: &Arc<Clients>) -> Arc<Clients> {
    if !is_lane() {
        return Arc::clone(shared);
    }
    OWN.with(|own| {
        let mut own = own.borrow_mut();
        if let Some((_, clients)) = own
            .iter()
            .find(|(of, _)| std::ptr::eq(of.as_ptr(), Arc::as_ptr(shared)))
        {
            return Arc::clone(clients);
        }
        // A dropped egress's clients go with it (their idle connections close).
        own.retain(|(of, _)| of.strong_count() > 0);
        let clients = Arc::new(shared.rebuilt());
        own.push((Arc::downgrade(shared), Arc::clone(&clients)));
        clients
    })
}

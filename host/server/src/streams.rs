//! How many streams each client has open, against `[server] max_streams_per_client`: one client
//! holding thousands of streams on a stalling upstream must not take the gateway's capacity
//! from every other client. A client is its virtual key when it presents one (clients behind
//! one proxy share an address, not a key), else its IP address. The table outlives served-state
//! swaps (it lives in the service), and an entry leaves it with the client's last stream, so it
//! holds only clients with open streams.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Who a stream's slot is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Client {
    /// A request with a virtual key: the key's id.
    Key(String),
    /// A request without one: its peer's address.
    Address(IpAddr),
}

/// Open streams per client.
#[derive(Debug, Default)]
pub(crate) struct StreamSlots {
    open: Mutex<HashMap<Client, u32>>,
}

/// One open stream of one client; dropping it (the stream ended, however) frees the slot.
#[derive(Debug)]
pub(crate) struct StreamSlot {
    slots: Arc<StreamSlots>,
    client: Client,
}

impl StreamSlots {
    fn open(&self) -> MutexGuard<'_, HashMap<Client, u32>> {
        // Every change is one counter update: still consistent after a panic elsewhere.
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A slot for one more stream of `client`, unless it already has `max` open.
    pub(crate) fn take(self: &Arc<Self>, client: Client, max: u32) -> Option<StreamSlot> {
        let mut open = self.open();
        let count = open.entry(client.clone()).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(StreamSlot {
            slots: Arc::clone(self),
            client,
        })
    }

    #[cfg(test)]
    fn clients(&self) -> usize {
        self.open().len()
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open();
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_gets_max_slots_and_one_more_once_a_stream_ends() {
        let slots = Arc::new(StreamSlots::default());
        let a = Client::Address(IpAddr::from([10, 0, 0, 1]));
        let b = Client::Address(IpAddr::from([10, 0, 0, 2]));
        let first = slots.take(a.clone(), 2);
        let second = slots.take(a.clone(), 2);
        assert!(first.is_some() && second.is_some());
        assert!(
            slots.take(a.clone(), 2).is_none(),
            "a third stream of the same client"
        );
        // Another client is not affected, nor a key presented from the same address.
        let other = slots.take(b, 2);
        assert!(other.is_some());
        let keyed = slots.take(Client::Key("key_1".into()), 2);
        assert!(keyed.is_some());
        drop(first);
        assert!(slots.take(a, 2).is_some());
        drop((second, other, keyed));
        assert_eq!(
            slots.clients(),
            0,
            "clients without open streams are forgotten"
        );
    }
}

//! Who may do what, and how much. This crate owns aigw's virtual keys ([`Key`]: a secret shown
//! once, stored only as its hash, with grants — models, tools, memory namespaces — and limits —
//! requests and tokens per minute, concurrent requests, a budget per period), and the accounting
//! that holds those limits across every process sharing one store. Its state lives in the shared
//! libsql store (`aigw-memory`'s migrations 5-7), so replicas agree with no other moving part;
//! the hot path reads only memory (the key directory, locally leased allowance) and reaches the
//! database off it. HTTP shapes (headers, error bodies, the admin API) are the server's: this
//! crate speaks Rust types.

mod directory;
mod key;
pub mod keys;
pub mod limiter;
mod pattern;
pub mod prices;
mod secret;
mod team;
pub mod teams;
pub mod usage;

pub use directory::Directory;
pub use key::{Key, KeySpec, NamespaceNotGranted, Period};
pub use keys::{KeyError, KeyPage, NewKey, Page};
pub use limiter::{
    Gauge, Headroom, Limiter, LimiterOptions, Limits, Metric, Refusal, Refused, Subject,
    SubjectKind, Ticket,
};
pub use pattern::Pattern;
pub use prices::{Price, PriceError, Prices, Tokens};
pub use secret::{SECRET_PREFIX, SecretHash, hint, new_secret};
pub use team::{Team, TeamSpec};
pub use teams::TeamPage;
pub use usage::{Ledger, UsageOptions};

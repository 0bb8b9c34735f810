//! aigw's egress: every request that leaves the gateway goes through [`Egress::send`]. It owns
//! the pooled upstream HTTP clients (hyper-util's pool, rustls, the environment's proxies, one per connect timeout, redirects refused), the
//! credentials ([`Secret`], where each goes, and the only origins it may go to), and grants
//! (each caller's allow-list of origins, denied by default, checked on every send). It depends
//! on no other aigw crate, and no HTTP-client type crosses its API: a request and an answer are
//! this crate's own types, so the client under it can change without touching the server or
//! the runtime's outbound import.

mod client;
mod credential;
mod egress;
mod error;
mod grants;
pub mod lane;
mod origin;
mod parsed;
mod response;

pub use client::Transport;
pub use credential::{Credential, Placement, Secret};
pub use egress::{Egress, Request, SendOptions};
pub use error::{EgressError, ErrorKind};
pub use grants::Grants;
pub use origin::Origin;
pub use response::{Body, Headers, Response};

//! Whom a plugin call is for: the per-call context every host import acts through.
//!
//! The host sets it in the instance's store when a call starts and clears it when the call ends
//! (an instance whose call faulted or was cancelled is dropped with it), so an import can never
//! act for an earlier caller, whatever the guest remembers. See [`crate::pool`] for why that is
//! what makes sharing warm instances across tenants safe.

use std::sync::Arc;

use aigw_egress::{Credential, Grants};

use crate::imports::outbound::OutboundLimits;
use crate::types::ToolTarget;

/// The caller of one plugin call and what it may reach. The default is the empty context:
/// no namespace, no key, no grants (what provider calls and plugin loading run with).
#[derive(Debug, Clone, Default)]
pub struct CallContext {
    /// The memory namespace the call may read and write (`memory` import); `None`: no memory.
    pub namespace: Option<Arc<str>>,
    /// The caller's key (its name, never the secret), attached to the plugin's log lines.
    pub key: Option<Arc<str>>,
    /// The origins the call's `outbound` requests may go to; empty: none.
    pub grants: Grants,
    /// The operator's credential for the upstream the call is for: the egress adds it to
    /// requests to its own origins only. The plugin never sees it.
    pub credential: Option<Credential>,
    /// This call's bounds on `outbound` (a tool's own timeout and response cap); `None`: the
    /// runtime's [`crate::Services`] defaults.
    pub outbound: Option<OutboundLimits>,
    /// The upstream a tool call is for (tool calls only; empty for a plugin without upstreams).
    pub upstream: ToolTarget,
}

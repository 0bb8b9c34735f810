//! The `outbound` import: a tool plugin's HTTP requests, sent by the host through the one egress
//! (`aigw-egress`) with the calling tenant's grants.
//!
//! Grant check: the grants are the running call's own ([`CallContext::grants`]); outside a call,
//! or for a call whose context grants nothing, the grants are empty and every request is refused
//! with a failure naming the origin, before any connection opens. The call's credential (the
//! operator's key of the upstream the call is for) is added by the egress, only to that
//! credential's own origins: the plugin never sees it.
//!
//! Per-call limits ([`OutboundLimits`]: the call's own, else the runtime's; defaults in brackets): sends per call [8], the whole
//! exchange of one send, body included [10 s], the response body [1 MiB, a larger answer fails
//! with `bad-response` and its connection is dropped], the connect timeout [5 s, one the egress
//! was built with]. Time spent waiting on a send does not count against the call's deadline,
//! which bounds the guest's own work; so a tool call takes at most the call deadline plus its
//! bounded import waits (sends × send timeout, memory operations × their timeout).

use std::time::{Duration, Instant};

use aigw_egress::{Credential, Egress, EgressError, ErrorKind, Grants, SendOptions};
use wasmtime::component::{HasData, Linker};

use crate::bindings::tool::aigw::plugin::outbound;
use crate::bindings::types::{Failure, HttpRequest, HttpResponse};
use crate::context::CallContext;
use crate::convert;
use crate::imports::Services;
use crate::state::{Clock, HostState};

/// What the plugin hears when the host has no egress.
pub const NO_EGRESS: &str = "outbound is not available: no egress is configured";

/// Bounds on what one call may send and receive.
#[derive(Debug, Clone)]
pub struct OutboundLimits {
    pub sends_per_call: u32,
    /// The whole exchange of one send: connecting, the answer, its body.
    pub send_timeout: Duration,
    pub response_body_bytes: usize,
    /// Must be one of the connect timeouts the egress was built with.
    pub connect_timeout: Duration,
}

impl Default for OutboundLimits {
    fn default() -> Self {
        OutboundLimits {
            sends_per_call: 8,
            send_timeout: Duration::from_secs(10),
            response_body_bytes: 1 << 20,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// Sends made by the running call.
#[derive(Debug, Default)]
pub(crate) struct CallState {
    sends: u32,
}

impl CallState {
    pub(crate) fn end_call(&mut self) {
        self.sends = 0;
    }
}

/// What the `outbound` import sees of the store: the services, the caller, the clock, its count.
pub(crate) struct OutboundHost<'a> {
    services: &'a Services,
    call: Option<&'a CallContext>,
    clock: &'a mut Option<Clock>,
    state: &'a mut CallState,
}

struct OutboundImport;

impl HasData for OutboundImport {
    type Data<'a> = OutboundHost<'a>;
}

pub(crate) fn add_to_linker(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    outbound::add_to_linker::<HostState, OutboundImport>(linker, |s| OutboundHost {
        services: &s.services,
        call: s.call.as_ref(),
        clock: &mut s.clock,
        state: &mut s.outbound,
    })
}

impl outbound::Host for OutboundHost<'_> {
    async fn send(&mut self, request: HttpRequest) -> Result<HttpResponse, Failure> {
        let limits = self
            .call
            .and_then(|call| call.outbound.as_ref())
            .unwrap_or(&self.services.outbound_limits);
        if self.state.sends >= limits.sends_per_call {
            return Err(Failure::InvalidRequest(format!(
                "outbound: more than {} sends in one call",
                limits.sends_per_call
            )));
        }
        self.state.sends += 1;
        let Some(egress) = self.services.egress.as_ref() else {
            return Err(Failure::Unavailable(NO_EGRESS.to_owned()));
        };
        let none;
        let (grants, credential) = match self.call {
            Some(call) => (&call.grants, call.credential.as_ref()),
            None => {
                none = Grants::none();
                (&none, None)
            }
        };
        let started = Instant::now();
        let answer = exchange(egress, grants, credential, limits, request).await;
        if let Some(clock) = self.clock.as_mut() {
            clock.exclude(started.elapsed());
        }
        answer
    }
}

/// One request and its whole answer, body capped.
async fn exchange(
    egress: &Egress,
    grants: &Grants,
    credential: Option<&Credential>,
    limits: &OutboundLimits,
    request: HttpRequest,
) -> Result<HttpResponse, Failure> {
    let request = convert::egress_request(request);
    let options = SendOptions {
        grants,
        credential,
        connect_timeout: limits.connect_timeout,
        timeout: limits.send_timeout,
    };
    let response = egress.send(request, options).await.map_err(failure)?;
    let (status, headers) = (response.status, response.headers);
    // Past the limit, the response is dropped, closing its connection: the rest is never read.
    let body = response
        .body
        .collect(limits.response_body_bytes)
        .await
        .map_err(failure)?;
    Ok(convert::egress_response(status, &headers, body))
}

/// An egress error as the plugin hears it.
fn failure(error: EgressError) -> Failure {
    let message = error.message().to_owned();
    match error.kind() {
        ErrorKind::Denied => Failure::Unauthorized(message),
        ErrorKind::InvalidRequest => Failure::InvalidRequest(message),
        ErrorKind::Setup | ErrorKind::Connect | ErrorKind::Timeout | ErrorKind::BodyBroken => {
            Failure::Unavailable(message)
        }
        ErrorKind::TooLarge => Failure::BadResponse(format!(
            "outbound: response body is over the limit: {message}"
        )),
    }
}

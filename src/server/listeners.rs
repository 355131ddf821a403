//! The running listeners, by name, and what a reload does to them: a listener added is bound
//! and served, one removed stops accepting and drains, one moved to another address is bound
//! there before the old address drains, and every listener's TLS is read again (certificate
//! rotation). All or nothing: when an address cannot be bound or a certificate cannot be
//! loaded, nothing changes.
//!
//! A listener that keeps its address keeps its socket and serves new connections with its new
//! routes, protocols and limits; connections already open keep what they were opened with.
//! What is fixed by the socket (TLS on or off, HTTP/3 on or off, `max_connections`) applies at
//! the next start, and the reload says so.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::sync::{mpsc, watch};

use super::error::ServerError;
use super::listener::{BoundListener, ListenerSlot, PreparedTls};
use crate::policy::Policy;
use crate::policy::compiled::Listener;

/// A listener being served.
struct Running {
    /// The configuration it was bound with.
    bound: Arc<Listener>,
    slot: ListenerSlot,
    stop: watch::Sender<bool>,
}

impl Running {
    fn new(l: &BoundListener, stop: watch::Sender<bool>) -> Self {
        let slot = l.slot();
        Self {
            bound: slot.current(),
            slot,
            stop,
        }
    }
}

/// A listener bound for the server loop to serve, with what stops it.
pub type Spawn = (BoundListener, watch::Receiver<bool>);

/// The running listeners.
pub struct ListenerSet {
    running: Mutex<Vec<Running>>,
    spawn: mpsc::UnboundedSender<Spawn>,
}

/// What a reload changed among the listeners.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListenerChanges {
    /// Listeners whose TLS was read again and replaced.
    pub tls_replaced: Vec<String>,
    /// Listeners bound (added, or moved to another address), with their address.
    pub bound: Vec<(String, Option<SocketAddr>)>,
    /// Listeners that stopped accepting (removed, or moved away).
    pub stopped: Vec<String>,
    /// Listeners that keep their address and serve new connections with new routes,
    /// protocols or limits.
    pub reconfigured: Vec<String>,
    /// Listeners that keep their address and whose changes need a new socket (TLS on or off,
    /// HTTP/3 on or off, `max_connections`): those apply at the next start.
    pub at_next_start: Vec<String>,
}

/// Everything a reload needs, prepared without changing anything.
pub struct Plan {
    tls: Vec<(ListenerSlot, PreparedTls)>,
    configure: Vec<(ListenerSlot, Arc<Listener>, bool)>,
    bind: Vec<BoundListener>,
    stop: Vec<String>,
    at_next_start: Vec<String>,
}

/// Whether `next` differs from the listener bound as `bound` in what its socket fixes.
fn needs_new_socket(bound: &Listener, next: &Listener) -> bool {
    use crate::policy::compiled::Protocol;
    bound.tls.is_some() != next.tls.is_some()
        || bound.speaks(Protocol::Http3) != next.speaks(Protocol::Http3)
        || bound.limits.max_connections != next.limits.max_connections
}

/// Whether new connections would be served differently under `next`.
fn serves_differently(current: &Listener, next: &Listener) -> bool {
    current.protocols != next.protocols
        || current.routes != next.routes
        || current.limits != next.limits
}

impl ListenerSet {
    /// The set of the listeners bound at start; returns with it what stops each of them and
    /// where listeners bound later are sent to be served.
    pub fn new(
        bound: &[BoundListener],
    ) -> (
        Self,
        Vec<watch::Receiver<bool>>,
        mpsc::UnboundedReceiver<Spawn>,
    ) {
        let (spawn, spawned) = mpsc::unbounded_channel();
        let mut running = Vec::new();
        let mut stops = Vec::new();
        for l in bound {
            let (stop, stopped) = watch::channel(false);
            running.push(Running::new(l, stop));
            stops.push(stopped);
        }
        (
            Self {
                running: Mutex::new(running),
                spawn,
            },
            stops,
            spawned,
        )
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds what the policy adds or moves and builds every listener's TLS; nothing changes.
    pub async fn prepare(&self, policy: &Policy) -> Result<Plan, ServerError> {
        let current: Vec<(Arc<Listener>, ListenerSlot)> = self
            .lock()
            .iter()
            .map(|r| (r.bound.clone(), r.slot.clone()))
            .collect();
        let mut plan = Plan {
            tls: Vec::new(),
            configure: Vec::new(),
            bind: Vec::new(),
            stop: Vec::new(),
            at_next_start: Vec::new(),
        };
        for next in &policy.listeners {
            match current.iter().find(|(b, _)| b.name == next.name) {
                Some((bound, slot)) if bound.bind == next.bind => {
                    if needs_new_socket(bound, next) {
                        plan.at_next_start.push(next.name.clone());
                        continue;
                    }
                    if let Some(p) = slot.prepare(next)? {
                        plan.tls.push((slot.clone(), p));
                    }
                    let changed = serves_differently(&slot.current(), next);
                    plan.configure.push((slot.clone(), next.clone(), changed));
                }
                Some((bound, _)) => {
                    plan.bind.push(BoundListener::bind(next.clone()).await?);
                    plan.stop.push(bound.name.clone());
                }
                None => plan.bind.push(BoundListener::bind(next.clone()).await?),
            }
        }
        for (bound, _) in &current {
            if !policy.listeners.iter().any(|l| l.name == bound.name) {
                plan.stop.push(bound.name.clone());
            }
        }
        Ok(plan)
    }

    /// Applies a prepared plan: new TLS for new handshakes, new listeners served, the ones
    /// removed or moved stopped (they drain what they have in flight).
    pub fn commit(&self, plan: Plan) -> ListenerChanges {
        let mut changes = ListenerChanges {
            at_next_start: plan.at_next_start,
            ..ListenerChanges::default()
        };
        for (slot, prepared) in plan.tls {
            slot.install(prepared);
            changes.tls_replaced.push(slot.name().to_owned());
        }
        for (slot, next, changed) in plan.configure {
            slot.set_current(next);
            if changed {
                changes.reconfigured.push(slot.name().to_owned());
            }
        }
        let mut running = self.lock();
        for name in plan.stop {
            if let Some(i) = running.iter().position(|r| r.bound.name == name) {
                let r = running.remove(i);
                let _ = r.stop.send(true);
                changes.stopped.push(name);
            }
        }
        for l in plan.bind {
            let (stop, stopped) = watch::channel(false);
            changes.bound.push((l.name().to_owned(), l.local_addr()));
            running.push(Running::new(&l, stop));
            if self.spawn.send((l, stopped)).is_err() {
                tracing::error!("a listener was bound after the server stopped");
            }
        }
        changes
    }

    /// Stops every listener (shutdown).
    pub fn stop_all(&self) {
        for r in self.lock().iter() {
            let _ = r.stop.send(true);
        }
    }
}

//! Sessions: one per job, created when the job is taken (JOB-2) and removed when
//! it ends (LC-7). A session is the meeting point of the job lifecycle (which
//! attaches a terminal source and waits on the connection) and the server (which
//! routes requests to it and holds its single terminal connection, EX-4).

mod registry;

pub use registry::Sessions;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{watch, Notify};

use crate::faults::{self, Fault};
use crate::protocol::CloseReason;
use crate::terminal::Terminal;

/// Why the executor could not give a terminal (EX-5).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TerminalUnavailable(pub String);

/// A terminal being opened; may wait (docker: up to 15 s for the build container).
pub type Opening = Pin<Box<dyn Future<Output = Result<Terminal, TerminalUnavailable>> + Send>>;

/// What the executor attaches to a session when the job starts running (EX-3).
pub trait TerminalSource: Send + Sync {
    fn open(&self) -> Opening;
}

/// A service port the job declares, reachable through the proxy route (RT-2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePort {
    /// Name or alias of the service, as it appears in the URL.
    pub name: String,
    pub port: u16,
    /// Host to dial for it.
    pub host: String,
}

/// One job's interactive session.
pub struct Session {
    pub id: String,
    /// The exact value the `Authorization` header must carry (EX-1).
    pub token: String,
    services: Mutex<Vec<ServicePort>>,
    source: watch::Sender<Option<Arc<dyn TerminalSource>>>,
    /// Wakes requests waiting for a source (EX-3) in the order they came. Not
    /// the watch: it wakes its receivers in a random order, and two waiting
    /// requests race for the slot (EX-7), so a simulation would not replay.
    attached: Notify,
    /// The single terminal slot (EX-4). Freed when a connection starts to end,
    /// before its close reply leaves (WS-7), so that a browser reconnecting at
    /// once gets 101.
    connection: Mutex<Option<Connection>>,
    /// How many terminal connections are still open (one, or briefly two while
    /// an ending one sends its close frame); the job lifecycle waits on it (LC-1/2).
    connected: watch::Sender<usize>,
    next_connection: AtomicU64,
    /// Set when the job's session ends: connections it proxies to the job's
    /// services are cut then (WI-6).
    ended: watch::Sender<bool>,
}

struct Connection {
    id: u64,
    stop: watch::Sender<Option<CloseReason>>,
}

impl Session {
    pub(crate) fn new(id: String, token: String) -> Self {
        Session {
            id,
            token,
            services: Mutex::new(Vec::new()),
            source: watch::channel(None).0,
            attached: Notify::new(),
            connection: Mutex::new(None),
            connected: watch::channel(0).0,
            next_connection: AtomicU64::new(0),
            ended: watch::channel(false).0,
        }
    }

    /// The session's URL path, without the host: `/session/<id>`.
    pub fn endpoint(&self) -> String {
        format!("/session/{}", self.id)
    }

    /// The job's service ports, known once the job arrives (after the session was offered).
    pub fn set_services(&self, services: Vec<ServicePort>) {
        *self.services.lock().expect("session lock poisoned") = services;
    }

    pub fn service(&self, name: &str, port: u16) -> Option<ServicePort> {
        self.services
            .lock()
            .expect("session lock poisoned")
            .iter()
            .find(|s| s.name == name && s.port == port)
            .cloned()
    }

    /// WI-6: the session is over; proxied connections end and no service is
    /// reachable through it any more.
    pub fn end(&self) {
        self.services.lock().expect("session lock poisoned").clear();
        self.ended.send_replace(true);
    }

    /// Resolves once [`Session::end`] was called.
    pub async fn ended(&self) {
        let mut rx = self.ended.subscribe();
        let _ = rx.wait_for(|&ended| ended).await;
    }

    /// EX-3: the job entered its running stage; terminals can be opened.
    pub fn attach(&self, source: Arc<dyn TerminalSource>) {
        self.source.send_replace(Some(source));
        self.attached.notify_waiters();
    }

    /// Terminal requests are refused from now on (EX-5), e.g. after the build container stopped.
    pub fn detach(&self) {
        self.source.send_replace(None);
    }

    /// Waits up to `limit` for a terminal source (EX-3).
    pub async fn wait_attached(&self, limit: Duration) -> Option<Arc<dyn TerminalSource>> {
        let attached = async {
            loop {
                let notified = self.attached.notified();
                tokio::pin!(notified);
                // Registered before the check, so an attach in between is not missed.
                notified.as_mut().enable();
                if let Some(source) = self.source.borrow().clone() {
                    return source;
                }
                notified.await;
            }
        };
        tokio::time::timeout(limit, attached).await.ok()
    }

    /// EX-4: takes the session's single terminal slot, or `None` if it is taken.
    pub fn lock(self: &Arc<Self>) -> Option<ConnectionGuard> {
        let mut slot = self.connection.lock().expect("session lock poisoned");
        if slot.is_some() && !faults::active(Fault::NoLock) {
            return None;
        }
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed) + 1;
        let (stop, stop_rx) = watch::channel(None);
        *slot = Some(Connection { id, stop });
        self.connected.send_modify(|open| *open += 1);
        Some(ConnectionGuard {
            session: self.clone(),
            id,
            stop: stop_rx,
        })
    }

    pub fn is_connected(&self) -> bool {
        *self.connected.borrow() > 0
    }

    /// Resolves when no terminal connection is open.
    pub async fn disconnected(&self) {
        let mut rx = self.connected.subscribe();
        let _ = rx.wait_for(|&open| open == 0).await;
    }

    /// Frees the slot if connection `id` still holds it.
    fn free_slot(&self, id: u64) {
        let mut slot = self.connection.lock().expect("session lock poisoned");
        if slot.as_ref().map(|c| c.id) == Some(id) && !faults::active(Fault::SlotKept) {
            *slot = None;
        }
    }

    /// Ends the open terminal connection, if any, with `reason`, and waits (at
    /// most `grace`) until it is gone, so that its close frame is on the wire
    /// before the job goes on.
    pub async fn end_terminal(&self, reason: CloseReason, grace: Duration) {
        if let Some(conn) = self
            .connection
            .lock()
            .expect("session lock poisoned")
            .as_ref()
        {
            conn.stop.send_replace(Some(reason));
        }
        // Also a connection that freed the slot may still be sending its close frame.
        let _ = tokio::time::timeout(grace, self.disconnected()).await;
    }
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Holds the session's terminal slot; [`ConnectionGuard::free_slot`] frees it
/// for the next browser, and dropping the guard also tells the job that the
/// terminal disconnected (LC-2).
pub struct ConnectionGuard {
    session: Arc<Session>,
    id: u64,
    stop: watch::Receiver<Option<CloseReason>>,
}

impl ConnectionGuard {
    /// Resolves with the reason when the session asks this connection to end.
    pub async fn stop_requested(&mut self) -> CloseReason {
        match self.stop.wait_for(|r| r.is_some()).await {
            Ok(r) => r.clone().expect("checked by wait_for"),
            // The session is gone: the job ended.
            Err(_) => CloseReason::JobFinished,
        }
    }

    pub fn session(&self) -> &Arc<Session> {
        &self.session
    }

    /// EX-4, WS-7: the connection is ending; another may take the slot now,
    /// while this one still sends its close frame. The session no longer asks
    /// this one to stop (`end_terminal` still waits until it is gone).
    pub fn free_slot(&self) {
        self.session.free_slot(self.id);
    }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.session.free_slot(self.id);
        self.session.connected.send_modify(|open| *open -= 1);
    }
}

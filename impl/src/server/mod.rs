//! The session server (`[session_server]`): TLS listener, HTTP/1.1, routing of
//! requests to sessions (RT), the terminal endpoint (EX) and the service proxy.

mod connection;
mod exec;
mod proxy;
mod response;
mod routes;
mod upgrade;

use std::time::Duration;

use tokio::sync::watch;
use tracing::{debug, warn};

use crate::faults::{self, Fault};
use crate::net::{Listener, Net};
use crate::protocol::Timing;
use crate::session::Sessions;
use crate::tls::Identity;

/// What the server needs to run, besides the listener.
#[derive(Clone)]
pub struct ServerContext<N: Net> {
    pub sessions: Sessions,
    /// For the service proxy's outgoing connections.
    pub net: N,
    pub timing: Timing,
    pub limits: Limits,
}

/// Waits and limits of the server. Defaults are the reference's where it has
/// one (EX-3), project-defined otherwise.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// EX-3: how long a terminal request waits for the job to start running.
    pub attach_wait: Duration,
    /// A client must finish the TLS handshake within this (project-defined).
    pub handshake_timeout: Duration,
    /// A client must send a whole request head within this (project-defined).
    pub header_timeout: Duration,
    /// Largest request head; a larger one gets 431.
    pub max_header_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            attach_wait: Duration::from_secs(60),
            handshake_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(10),
            max_header_bytes: 16 * 1024,
        }
    }
}

/// The planted bug `fd-leak`: a descriptor opened for a connection and never
/// closed.
fn leak_a_descriptor() {
    if let Ok(file) = std::fs::File::open("/dev/null") {
        std::mem::forget(file);
    }
}

/// Accepts connections until `shutdown` turns true. Each connection runs in a
/// task of its own, so a slow or broken client never holds up another.
pub async fn serve<N: Net>(
    listener: N::Listener,
    identity: Identity,
    context: ServerContext<N>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => return,
            a = listener.accept() => a,
        };
        match accepted {
            Ok((stream, peer)) => {
                debug!(%peer, "session server: connection");
                if faults::active(Fault::FdLeak) {
                    leak_a_descriptor();
                }
                let (identity, context) = (identity.clone(), context.clone());
                tokio::spawn(connection::handle(stream, identity, context));
            }
            Err(e) => {
                // Out of fds and the like: back off instead of spinning.
                warn!("session server: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

//! The runner side of GitLab's interactive web terminals.
//!
//! # Layout
//! (SPEC ids in parentheses; the repository's `SPEC.md` is the contract.)
//! - [`config`]: `config.toml`, `[session_server]` and `[[runners]]` (CFG).
//! - [`tls`]: the self-signed certificate made at every start (TLS).
//! - [`net`]: the transport, real sockets or turmoil's; nothing else names a socket type.
//! - `server`: the session server: TLS, HTTP/1.1, routing (RT), the terminal
//!   endpoint (EX) and the service proxy.
//! - [`session`]: one job's session: id, token, its terminal source and its
//!   single connection (JOB-2, EX-3/4, LC-7).
//! - [`protocol`]: the terminal WebSocket protocol and the relay (WS).
//! - [`terminal`]: a real PTY, or the in-process shell of simulations (EX-6, DK-2).
//! - [`machine`]: where processes run: the operating system or the simulation.
//! - [`executor`]: shell, docker and custom executors (DK, EX-5).
//! - [`job`]: a job's life: stages, session wait, timeout, cancel, log (LC).
//! - [`coordinator`]: the GitLab API client: job requests and updates (JOB).
//! - [`runner`]: puts it all together: the process that `session-server run` starts.
//! - [`rng`], `duration`: injected randomness; Go-style durations for the job log.
//! - [`faults`]: test-only bugs for the fuzzer to find, compiled in only by the
//!   package `session-server-faulty` (never by the shipped `session-server`).
//!
//! Time is only `tokio::time` and randomness only [`rng::Rng`], so the same code
//! runs deterministically inside turmoil (feature `turmoil`).

// The public surface is what drives a runner from outside: its assembly
// (`runner`, `config`), its seams (`net`, `machine` with `terminal`, `rng`) and
// the test-only `faults`. `coordinator`, `executor`, `job`, `protocol`, `session`
// and `tls` stay public only for this crate's own integration tests and benches
// (`impl/tests`, `impl/benches`); the harness does not use them.
pub mod config;
pub mod coordinator;
pub(crate) mod duration;
pub mod executor;
pub mod faults;
pub mod job;
pub mod machine;
pub mod net;
pub mod protocol;
pub mod rng;
pub mod runner;
pub(crate) mod server;
pub mod session;
pub mod terminal;
pub mod tls;

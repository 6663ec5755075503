//! The harness's actors: everything around the runner under test, written
//! once over any network (`session_server::net::Net`: turmoil's in a
//! simulated world, tokio's for real) and never with the runner's code.
//!
//! - `gitlab`: Rails' state and authorization, the coordinator API the
//!   runner polls, the jobs it hands out; `workhorse`: the channel proxy
//!   between browsers and the runner (WH-1..5, WI-3), with `service_proxy`
//!   (WI-4); `browser`: a user's browser (opens, types, closes, fetches).
//! - `middlebox`: load balancer and proxies; `service`: a job's service
//!   (WI-5); `session_probe`: whether an ended job's session URL still
//!   answers (LC-7).
//! - The actors' own clients: `ws` (dialing, its frame limits and 101 check),
//!   `exchange` (one HTTP request and its answer), `plain` (requests at a
//!   terminal that are not upgrades), `tls` (its own trust of a PEM).

pub mod browser;
pub mod exchange;
pub mod gitlab;
pub mod middlebox;
pub mod plain;
pub mod service;
mod service_proxy;
pub mod session_probe;
pub mod tls;
pub mod workhorse;
pub mod ws;

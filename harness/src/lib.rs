//! A simulation and conformance harness for GitLab Runner's interactive web
//! terminals.
//!
//! # Layout
//! - [`scenario`]: scenario files: the world, a timeline of steps, expectations.
//! - [`actors`]: GitLab (coordinator, Rails, Workhorse), browsers,
//!   middleboxes and services, over any network, simulated or real.
//! - `timeline`: the one engine that plays a scenario's steps at their times
//!   and ends the run once it settled, on a simulated or a real ground.
//! - [`world`]: the simulated world on turmoil: the actors and the runner
//!   under test as its hosts, network faults.
//! - [`duration`]: durations read and written one way (Go's notation).
//! - [`trace`]: what was observed, in canonical order; rendered, it is the snapshot.
//! - [`expect`]: verdicts of expectations against a trace.
//! - [`judge`]: the one verdict of a scenario's run (expectations, and SPEC's
//!   invariants where a scenario asks), for `run`, `cargo test` and `conform`.
//! - [`run`], [`catalogue`], [`snapshot`]: running the catalogue, its files
//!   on disk, a trace against its snapshot (insta's format, read by insta).
//! - [`report`]: the one result of a case and report of a run, for `run`,
//!   `conform`, a soak and `report merge`: human lines, JSON, JUnit.
//! - [`fuzz`]: generated session lifecycles checked against SPEC's invariants,
//!   shrunk to minimal regressions.
//! - [`conform`]: a real runner held to the contract over real sockets.
//! - [`merge`]: the JSON reports of a run's shards as one report (`report merge`).
//! - [`shard`]: `--shard K/N` (or GitLab CI's `CI_NODE_*`): one part of a run.
//! - [`serve`]: the world's GitLab on a real port with its pages (job list,
//!   job page, Debug button, xterm.js terminal) for a real browser;
//!   [`chromium`] drives headless Chromium through WebDriver.
//! - [`spec`], [`coverage`]: the rules of the repository's `SPEC.md` (read at
//!   build time), and what checks each of them.
//!
//! The harness drives the runner only through its public API and its sockets,
//! as it would drive a third party's runner.

pub mod actors;
pub mod catalogue;
pub mod chromium;
pub mod conform;
pub mod coverage;
pub mod duration;
pub mod expect;
pub mod fuzz;
pub mod judge;
pub mod merge;
pub mod report;
pub mod run;
pub mod scenario;
pub mod serve;
pub mod shard;
pub mod snapshot;
pub mod spec;
mod timeline;
pub mod trace;
pub mod world;

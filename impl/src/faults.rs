//! Test-only faults: realistic bugs that the harness's fuzzer must find.
//!
//! Compiled in only with the feature `fault-injection`, which only the package
//! `session-server-faulty` (impl/faulty) has: the shipped `session-server` has
//! no such feature, so every check there is a constant `false`. A fault is switched on for the current thread (the
//! simulator runs a whole world on one thread) or, for the binary, for the
//! process from `SESSION_SERVER_FAULTS=no-lock,uncapped-timeout,...`.

/// A bug that can be switched on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fault {
    /// EX-4 broken: a second terminal is accepted while one is open.
    NoLock,
    /// LC-1 broken: the wait after the script ignores the job's deadline.
    UncappedTimeout,
    /// WS-5 broken like the reference: input messages cut at 32 KiB.
    TruncateInput,
    /// EX-1 broken: the terminal is opened before the token is checked.
    SpawnBeforeAuth,
    /// EX order broken: the one-terminal check (423) runs first, before the
    /// token's (401) and so before the upgrade's (405).
    LockBeforeAuth,
    /// CFG-3 broken: `session_timeout = 0` is taken as zero seconds, not the default.
    ZeroTimeoutKept,
    /// WS-6 broken: the session timeout closes with 1000 instead of 1001.
    TimeoutCloseNormal,
    /// LC-2 broken: the job log does not say `Terminal disconnected`.
    NoDisconnectLog,
    /// WS-7 broken: a closed connection keeps the session's slot (a reconnect gets 423).
    SlotKept,
    /// DK-1 broken: the wait for the build container is 5 s, not 15 s.
    ShortContainerWait,
    /// WS-4 broken: a Ping every 60 s, not every 30 s.
    SlowPings,
    /// WS-3 broken: output under `base64.terminal.gitlab.com` goes out in
    /// binary frames (the encoder's match falls through to the raw arm).
    Base64AsBinary,
    /// WS-3 broken the other way: base64 input is passed to the terminal
    /// undecoded (the decoder's match falls through to the raw arm).
    Base64InputRaw,
    /// A resource leak no single case sees: every accepted connection opens
    /// a file descriptor that is never closed (as a per-connection handle
    /// kept in a forgotten place would). Only a soak's fd count over many
    /// connections shows it (`conform --repeat`); the simulation has no fds.
    FdLeak,
}

impl Fault {
    pub const ALL: [Fault; 14] = [
        Fault::NoLock,
        Fault::UncappedTimeout,
        Fault::TruncateInput,
        Fault::SpawnBeforeAuth,
        Fault::LockBeforeAuth,
        Fault::ZeroTimeoutKept,
        Fault::TimeoutCloseNormal,
        Fault::NoDisconnectLog,
        Fault::SlotKept,
        Fault::ShortContainerWait,
        Fault::SlowPings,
        Fault::Base64AsBinary,
        Fault::Base64InputRaw,
        Fault::FdLeak,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::NoLock => "no-lock",
            Fault::UncappedTimeout => "uncapped-timeout",
            Fault::TruncateInput => "truncate-input",
            Fault::SpawnBeforeAuth => "spawn-before-auth",
            Fault::LockBeforeAuth => "lock-before-auth",
            Fault::ZeroTimeoutKept => "zero-timeout-kept",
            Fault::TimeoutCloseNormal => "timeout-close-normal",
            Fault::NoDisconnectLog => "no-disconnect-log",
            Fault::SlotKept => "slot-kept",
            Fault::ShortContainerWait => "short-container-wait",
            Fault::SlowPings => "slow-pings",
            Fault::Base64AsBinary => "base64-as-binary",
            Fault::Base64InputRaw => "base64-input-raw",
            Fault::FdLeak => "fd-leak",
        }
    }

    pub fn parse(name: &str) -> Option<Fault> {
        Fault::ALL.into_iter().find(|f| f.name() == name)
    }
}

#[cfg(feature = "fault-injection")]
mod switch {
    use std::cell::Cell;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::OnceLock;

    use super::Fault;

    fn bit(fault: Fault) -> u32 {
        1 << (fault as u32)
    }

    thread_local!(static THREAD: Cell<u32> = const { Cell::new(0) });
    static PROCESS: OnceLock<AtomicU32> = OnceLock::new();

    fn process() -> &'static AtomicU32 {
        PROCESS.get_or_init(|| {
            let names = std::env::var("SESSION_SERVER_FAULTS").unwrap_or_default();
            let bits = names
                .split(',')
                .filter_map(|n| Fault::parse(n.trim()))
                .fold(0, |b, f| b | bit(f));
            AtomicU32::new(bits)
        })
    }

    pub fn active(fault: Fault) -> bool {
        (THREAD.with(Cell::get) | process().load(Ordering::Relaxed)) & bit(fault) != 0
    }

    /// Switches these faults on for the current thread (and off all others).
    pub fn set_for_thread(faults: &[Fault]) {
        THREAD.with(|t| t.set(faults.iter().fold(0, |b, f| b | bit(*f))));
    }
}

#[cfg(feature = "fault-injection")]
pub use switch::set_for_thread;

/// Whether `fault` is switched on.
#[inline]
pub fn active(fault: Fault) -> bool {
    #[cfg(feature = "fault-injection")]
    {
        switch::active(fault)
    }
    #[cfg(not(feature = "fault-injection"))]
    {
        let _ = fault;
        false
    }
}

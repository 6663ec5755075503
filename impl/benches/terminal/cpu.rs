//! CPU time of this process and of its main thread, from /proc: the share of
//! the runner's workers against the client's.

/// User + system CPU seconds so far: of this process, and of its main thread.
///
/// The main thread runs `block_on`, so only the client's work (reading frames,
/// TLS decryption); the runtime's worker threads run the server and the I/O driver.
pub(crate) fn cpu_seconds() -> Cpu {
    Cpu {
        process: stat_cpu_seconds("/proc/self/stat"),
        main_thread: stat_cpu_seconds(&format!("/proc/self/task/{}/stat", std::process::id())),
    }
}

#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub process: f64,
    pub main_thread: f64,
}

impl std::ops::Sub for Cpu {
    type Output = Cpu;
    fn sub(self, earlier: Cpu) -> Cpu {
        Cpu {
            process: self.process - earlier.process,
            main_thread: self.main_thread - earlier.main_thread,
        }
    }
}

/// User + system CPU seconds in a /proc `stat` file.
pub(crate) fn stat_cpu_seconds(path: &str) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Counted after the command name, which may hold spaces: index 0 is the
    // state (field 3), so utime (field 14) and stime (15) are 11 and 12.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // SAFETY: sysconf only reads a system setting.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    (ticks(11) + ticks(12)) / per_second
}

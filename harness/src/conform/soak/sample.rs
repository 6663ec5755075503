//! What a soak reads of the runner's process between rounds: its open file
//! descriptors (`/proc/<pid>/fd`) and its resident memory (`VmRSS` of
//! `/proc/<pid>/status`), once the runner has settled after the round.

use std::io;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// How often a settling runner is read.
const EVERY: Duration = Duration::from_millis(200);
/// A count unchanged this long is settled. Longer than the 3 s a GitLab
/// tells runners between trace updates (`X-GitLab-Trace-Update-Interval`),
/// which is how a runner learns that the round's last job was cancelled:
/// until then that job's terminal and connections are still open.
pub const QUIET: Duration = Duration::from_secs(4);
/// A runner whose count keeps moving is read after this, as it is.
const SETTLE_AT_MOST: Duration = Duration::from_secs(15);

/// The runner's process at one moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Open file descriptors.
    pub fds: u64,
    /// Resident memory, KiB.
    pub rss_kib: u64,
}

/// Reads `pid`'s figures now.
pub fn read(pid: u32) -> io::Result<Sample> {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))?.count() as u64;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kib = vm_rss(&status).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("/proc/{pid}/status has no VmRSS line"),
        )
    })?;
    Ok(Sample { fds, rss_kib })
}

/// The process's program (the file name of its `argv[0]`; `comm` is cut
/// at 15 bytes), to show whose figures they are.
pub fn name(pid: u32) -> Option<String> {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let program = cmdline.split(|b| *b == 0).next()?;
    let program = String::from_utf8_lossy(program);
    let name = program.rsplit('/').next()?.to_string();
    (!name.is_empty()).then_some(name)
}

/// Reads `pid` once its descriptors are back to `baseline` (at or below it)
/// or have not changed for [`QUIET`]: the round's jobs and connections have
/// ended, or what is left stays.
pub async fn settled(pid: u32, baseline: Option<u64>) -> io::Result<Sample> {
    let started = Instant::now();
    let mut last = read(pid)?;
    let mut since = Instant::now();
    loop {
        if baseline.is_some_and(|b| last.fds <= b)
            || since.elapsed() >= QUIET
            || started.elapsed() >= SETTLE_AT_MOST
        {
            return Ok(last);
        }
        tokio::time::sleep(EVERY).await;
        let now = read(pid)?;
        if now.fds != last.fds {
            since = Instant::now();
        }
        last = now;
    }
}

/// `VmRSS:    12345 kB` → 12345.
fn vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let mut words = line["VmRSS:".len()..].split_whitespace();
    let kib = words.next()?.parse().ok()?;
    (words.next() == Some("kB")).then_some(kib)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vm_rss_is_read_in_kib() {
        let status = "Name:\tsession-server\nVmPeak:\t  99 kB\nVmRSS:\t   14336 kB\nThreads:\t3\n";
        assert_eq!(vm_rss(status), Some(14336));
        assert_eq!(vm_rss("Name: x\n"), None);
    }

    #[test]
    fn this_process_has_fds_memory_and_a_name() {
        let me = read(std::process::id()).expect("reading /proc/self");
        assert!(me.fds >= 3 && me.rss_kib > 0, "{me:?}");
        assert!(name(std::process::id()).is_some_and(|n| !n.is_empty()));
    }
}

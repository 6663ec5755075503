//! The runner as a separate `session-server` process, as an operator runs it,
//! and what the bench needs of this machine for it: its RSS, the processes of
//! its jobs (found by a job variable they all carry), a stop that leaves none
//! of them behind (also when the bench fails), a private temp dir, free ports
//! and enough file descriptors.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::support;

/// How long SIGTERM may take: the runner aborts every job and kills its processes.
const STOP_LIMIT: Duration = Duration::from_secs(60);

/// A port that was free a moment ago: the server must be told its port, and
/// port 0 would leave the bench to find out which one it got.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

pub fn count(processes: &[(libc::pid_t, String)], name: &str) -> usize {
    processes.iter().filter(|(_, comm)| comm == name).count()
}

/// The `session-server` binary of this package, run as a separate process.
/// Dropping it (also on a failure) stops it and kills whatever of its run is left.
pub struct ServerProcess {
    child: Child,
    /// The job variable (and its value) that every process of this run carries.
    marker_variable: &'static str,
    pub marker: String,
    log: PathBuf,
}

impl ServerProcess {
    /// Starts `session-server run --config <config>`, its output into `log`;
    /// the processes of its jobs carry `marker_variable=marker`.
    pub fn start(
        config: &Path,
        log: &Path,
        marker_variable: &'static str,
        marker: String,
    ) -> anyhow::Result<Self> {
        let log_file = std::fs::File::create(log).context("creating the server log")?;
        let child = Command::new(env!("CARGO_BIN_EXE_session-server"))
            .arg("run")
            .arg("--config")
            .arg(config)
            .env("RUST_LOG", "warn")
            // Its shells must not read this host's dotfiles (they may stall).
            .env("HOME", support::private_home())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("starting the session-server binary")?;
        Ok(ServerProcess {
            child,
            marker_variable,
            marker,
            log: log.to_path_buf(),
        })
    }

    pub fn pid(&self) -> libc::pid_t {
        self.child.id() as libc::pid_t
    }

    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.child.try_wait()? {
            None => Ok(()),
            Some(status) => bail!("session-server exited early: {status}"),
        }
    }

    /// VmRSS of the server process, in KiB.
    pub fn rss_kib(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .context("reading the server's /proc status")?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
            .context("no VmRSS in the server's /proc status")
    }

    /// The live processes of this run (pid, command name), found by the
    /// job variable that every script and terminal shell carries.
    pub fn processes(&self) -> Vec<(libc::pid_t, String)> {
        marked_processes(&format!("{}={}", self.marker_variable, self.marker))
    }

    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// SIGTERM (the runner aborts its jobs and kills their processes); waits
    /// up to a minute for the exit and says how long it took.
    pub async fn stop(&mut self) -> anyhow::Result<(ExitStatus, Duration)> {
        let stopping = Instant::now();
        // SAFETY: only sends a signal to our own child.
        unsafe { libc::kill(self.pid(), libc::SIGTERM) };
        let exited = async {
            loop {
                if let Some(status) = self.child.try_wait()? {
                    return Ok::<_, anyhow::Error>(status);
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        let status = tokio::time::timeout(STOP_LIMIT, exited)
            .await
            .map_err(|_| {
                anyhow!("session-server did not exit within {STOP_LIMIT:?} of SIGTERM")
            })??;
        Ok((status, stopping.elapsed()))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: only sends signals to our own child.
            unsafe { libc::kill(self.pid(), libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        kill_all(&self.processes());
    }
}

pub fn kill_all(processes: &[(libc::pid_t, String)]) {
    for &(pid, _) in processes {
        // SAFETY: only sends a signal, to a process of this run.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

/// Live processes whose environment holds `entry` (`KEY=value`), from /proc.
pub fn marked_processes(entry: &str) -> Vec<(libc::pid_t, String)> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let entry = entry.as_bytes();
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<libc::pid_t>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == entry))
        })
        .filter_map(|pid| {
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            Some((pid, comm.trim_end().to_string()))
        })
        .collect()
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> anyhow::Result<Self> {
        let path =
            std::env::temp_dir().join(format!("session-server-bench-{}", std::process::id()));
        std::fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(TempDir(path))
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// 1,000 sessions need thousands of descriptors here (the browsers' sockets)
/// and in the server (sockets, PTY masters, script pipes); the server inherits
/// this process's limit.
pub fn raise_fd_limit() -> anyhow::Result<()> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read or write `limit`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return Err(std::io::Error::last_os_error().into());
        }
    }
    Ok(())
}

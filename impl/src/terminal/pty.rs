//! A real terminal: a PTY from `portable-pty`, driven by tokio's reactor.
//!
//! An idle terminal must cost next to nothing (a thousand of them are expected to
//! fit in 64 MiB), so nothing here holds a thread or a buffer per terminal: reads
//! and writes go through one non-blocking duplicate of the master fd registered
//! with tokio, and a thread exists only for the few hundred milliseconds it takes
//! to end the processes of the terminals being closed and reap their shells.
//!
//! [`open`] must be called within a tokio runtime (the master fd is registered
//! with its reactor). Closing, and so dropping a [`Terminal`], works anywhere.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};

use portable_pty::{CommandBuilder, MasterPty, PtySize};
use tokio::io::unix::AsyncFd;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};

#[cfg(test)]
pub(crate) use super::hangup::tree_members;
use super::hangup::Reaper;
use crate::terminal::{Closing, ShellExit, Size, Terminal, TerminalControl, TerminalSpec};

/// Starts `spec.command` (or the default shell) in a new PTY.
///
/// Must be called within a tokio runtime.
pub fn open(spec: &TerminalSpec) -> io::Result<Terminal> {
    spawn(spec).map(|(terminal, _pid)| terminal)
}

/// [`open`], also returning the pid of the session leader (for tests).
fn spawn(spec: &TerminalSpec) -> io::Result<(Terminal, libc::pid_t)> {
    // Registering the master with the reactor would panic otherwise.
    tokio::runtime::Handle::try_current()
        .map_err(|e| io::Error::other(format!("a pty needs a tokio runtime: {e}")))?;
    let pair = portable_pty::native_pty_system()
        .openpty(pty_size(spec.size))
        .map_err(|e| io::Error::other(format!("opening a pty: {e:#}")))?;
    // Before the spawn, so that no failure after it has a process to clean up.
    let fd = pair
        .master
        .as_raw_fd()
        .ok_or_else(|| io::Error::other("the pty master has no file descriptor"))
        .and_then(async_dup)?;
    let command = command(spec)?;
    let argv = command.get_argv().clone();
    let child = pair
        .slave
        .spawn_command(command)
        .map_err(|e| io::Error::other(format!("spawning {argv:?} in a pty: {e:#}")))?;
    // The master reads EOF only once no slave fd is open anywhere: ours must go
    // now, or a terminal whose shell exited would look alive forever.
    drop(pair.slave);

    // Never fails: a spawned std::process::Child always has a pid.
    let pid = child
        .process_id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .ok_or_else(|| io::Error::other(format!("{argv:?} was spawned without a pid")))?;
    let exited = shell_exit(pid);
    let reaper = Reaper::new(pid, child);
    let fd = Arc::new(fd);

    let terminal = Terminal {
        reader: Box::new(PtyReader {
            fd: Arc::clone(&fd),
            reaper: Arc::clone(&reaper),
        }),
        writer: Box::new(PtyWriter { fd }),
        exited,
        control: Box::new(PtyControl {
            master: Mutex::new(pair.master),
            reaper,
        }),
    };
    Ok((terminal, pid))
}

/// Resolves when the shell `pid` exits (WS-7), through a pidfd registered with
/// tokio: no thread and no wait per terminal. The reaper still reaps it. On a
/// kernel without pidfds (before 5.3) it stays pending, and EOF on the output
/// ends the terminal instead.
fn shell_exit(pid: libc::pid_t) -> ShellExit {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    let Ok(raw) = RawFd::try_from(raw) else {
        return Box::pin(std::future::pending());
    };
    if raw < 0 {
        return Box::pin(std::future::pending());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let pidfd = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: the AsyncFd owns `pidfd`, so the fd stays open and the same until it is dropped.
    match unsafe { AsyncFd::register_with_interest(pidfd, Interest::READABLE) } {
        // A pidfd turns readable once the process has exited.
        Ok(pidfd) => Box::pin(async move {
            let _ = pidfd.readable().await;
        }),
        Err(_) => Box::pin(std::future::pending()),
    }
}

fn command(spec: &TerminalSpec) -> io::Result<CommandBuilder> {
    let argv = if spec.command.is_empty() {
        vec![default_shell()]
    } else {
        spec.command.clone()
    };
    let mut command = CommandBuilder::from_argv(argv.into_iter().map(Into::into).collect());
    // portable-pty would start in $HOME without a cwd, and silently in $HOME too
    // when the cwd is not a directory: neither is what the spec says.
    let cwd = match &spec.cwd {
        Some(cwd) if !cwd.is_dir() => {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("terminal working directory {cwd:?} is not a directory"),
            ))
        }
        Some(cwd) => cwd.clone(),
        None => std::env::current_dir()
            .map_err(|e| io::Error::new(e.kind(), format!("reading the current directory: {e}")))?,
    };
    command.cwd(cwd);
    for (key, value) in &spec.env {
        command.env(key, value);
    }
    // Set last: the other end is xterm.js, whatever the job's variables claim.
    command.env("TERM", "xterm-256color");
    Ok(command)
}

fn default_shell() -> String {
    std::env::var("SHELL")
        .ok()
        .filter(|shell| !shell.is_empty())
        .unwrap_or_else(|| "/bin/sh".into())
}

fn pty_size(size: Size) -> PtySize {
    PtySize {
        rows: size.rows,
        cols: size.cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

/// A non-blocking duplicate of `fd` registered with tokio, so that the
/// master stays usable for ioctls (resize) through portable-pty.
fn async_dup(fd: RawFd) -> io::Result<AsyncFd<OwnedFd>> {
    let context =
        |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{what} the pty master: {e}"));
    // SAFETY: F_DUPFD_CLOEXEC only reads `fd`, which the master keeps open.
    let dup = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if dup < 0 {
        return Err(context("duplicating", io::Error::last_os_error()));
    }
    // SAFETY: `dup` is a fresh descriptor that nothing else owns.
    let dup = unsafe { OwnedFd::from_raw_fd(dup) };
    // SAFETY: plain flag calls on a descriptor we own. O_NONBLOCK lands on the
    // open file description, which the master shares; it only does ioctls on it.
    let flags = unsafe { libc::fcntl(dup.as_raw_fd(), libc::F_GETFL) };
    if flags < 0
        || unsafe { libc::fcntl(dup.as_raw_fd(), libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0
    {
        return Err(context("making non-blocking", io::Error::last_os_error()));
    }
    // SAFETY: the AsyncFd owns `dup`, so the fd stays open and the same until it is dropped.
    unsafe { AsyncFd::register(dup) }.map_err(|e| context("registering", e.into()))
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The guarded values stay consistent even if a holder panicked.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Output of the terminal.
struct PtyReader {
    fd: Arc<AsyncFd<OwnedFd>>,
    reaper: Arc<Reaper>,
}

impl AsyncRead for PtyReader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() == 0 {
            return Poll::Ready(Ok(()));
        }
        loop {
            let mut guard = ready!(self.fd.poll_read_ready(cx))?;
            let unfilled = buf.initialize_unfilled();
            let eof = match guard.try_io(|fd| read(fd.as_raw_fd(), unfilled)) {
                Ok(Ok(0)) => true,
                Ok(Ok(n)) => {
                    buf.advance(n);
                    false
                }
                // Linux answers EIO on the master once every slave fd is closed.
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => true,
                Ok(Err(e)) => return Poll::Ready(Err(e)),
                Err(_would_block) => continue,
            };
            if eof {
                // The shell is gone (or at least everything that held the
                // terminal): reap it now, since nothing waits on it otherwise.
                self.reaper.start();
            }
            return Poll::Ready(Ok(()));
        }
    }
}

/// Input to the terminal.
struct PtyWriter {
    fd: Arc<AsyncFd<OwnedFd>>,
}

impl AsyncWrite for PtyWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            let mut guard = ready!(self.fd.poll_write_ready(cx))?;
            match guard.try_io(|fd| write(fd.as_raw_fd(), buf)) {
                Ok(Err(e)) if e.raw_os_error() == Some(libc::EIO) => {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::BrokenPipe,
                        "writing to a terminal whose processes are gone",
                    )))
                }
                Ok(result) => return Poll::Ready(result),
                Err(_would_block) => continue,
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// A terminal has no half-close; ending it is `close`'s job.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for writes of `buf.len()` bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: `buf` is valid for reads of `buf.len()` bytes.
    let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
    usize::try_from(n).map_err(|_| io::Error::last_os_error())
}

struct PtyControl {
    /// portable-pty's master is `Send` but not `Sync`.
    master: Mutex<Box<dyn MasterPty + Send>>,
    reaper: Arc<Reaper>,
}

impl TerminalControl for PtyControl {
    fn resize(&self, size: Size) -> io::Result<()> {
        lock(&self.master)
            .resize(pty_size(size))
            .map_err(|e| io::Error::other(format!("resizing the pty to {size:?}: {e:#}")))
    }

    fn close(&self) -> Closing {
        self.reaper.close()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::path::Path;
    use std::time::{Duration, Instant};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::timeout;

    const LIMIT: Duration = Duration::from_secs(10);
    /// How often a test looks again at processes it waits for.
    const POLL_INTERVAL: Duration = Duration::from_millis(10);

    /// Held by every test that opens a pty: the kernel hands a closed pty's
    /// number to the next one opened, which would fool the descriptor count
    /// of `close_kills_the_whole_process_group_and_reaps`.
    pub(crate) static PTYS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

    fn sh() -> TerminalSpec {
        TerminalSpec {
            command: vec!["sh".into()],
            ..private()
        }
    }

    /// The default shell with a HOME of its own: a shell reading this host's
    /// dotfiles (`pyenv init` in root's ~/.bashrc) may stall for a minute.
    pub(crate) fn private() -> TerminalSpec {
        TerminalSpec {
            env: vec![("HOME".into(), private_home().display().to_string())],
            ..TerminalSpec::default()
        }
    }

    /// An empty directory for this test process's shells to take as HOME.
    pub(crate) fn private_home() -> std::path::PathBuf {
        let home =
            std::env::temp_dir().join(format!("session-server-unit-home-{}", std::process::id()));
        std::fs::create_dir_all(&home).expect("creating a private HOME");
        home
    }

    /// Reads until `done` holds for the output so far; returns the output.
    async fn read_until(
        reader: &mut (dyn AsyncRead + Send + Unpin),
        done: impl Fn(&str) -> bool,
    ) -> String {
        let mut output = Vec::new();
        let mut buf = [0; 4096];
        let read = timeout(LIMIT, async {
            while !done(&String::from_utf8_lossy(&output)) {
                let n = reader.read(&mut buf).await.expect("reading the terminal");
                assert!(n > 0, "EOF; output: {:?}", String::from_utf8_lossy(&output));
                output.extend_from_slice(&buf[..n]);
            }
        })
        .await;
        let output = String::from_utf8_lossy(&output).into_owned();
        assert!(read.is_ok(), "timed out; output so far: {output:?}");
        output
    }

    /// Whether `output` holds `answer` at the end of a line. Commands are written
    /// so that their echo does not contain the answer; a prompt may precede it.
    fn answered(output: &str, answer: &str) -> bool {
        output.contains(&format!("{answer}\r\n"))
    }

    /// The pty number in the answer of `tty`.
    fn pts_index(output: &str) -> Option<u32> {
        let (_, rest) = output.split_once("/dev/pts/")?;
        let (index, _) = rest.split_once("\r\n")?;
        index.parse().ok()
    }

    async fn wait_until(what: &str, condition: impl Fn() -> bool) {
        let waited = timeout(LIMIT, async {
            while !condition() {
                tokio::time::sleep(POLL_INTERVAL).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "timed out waiting until {what}");
    }

    fn reaped(pid: libc::pid_t) -> bool {
        std::fs::metadata(format!("/proc/{pid}")).is_err()
    }

    /// This process's descriptors of pty number `index`, master or slave. Masters
    /// all link to /dev/ptmx; their fdinfo tells which pty they are.
    fn fds_of_pty(index: u32) -> usize {
        let slave = format!("/dev/pts/{index}");
        let master = format!("tty-index:\t{index}\n");
        let fds = std::fs::read_dir("/proc/self/fd").expect("listing /proc/self/fd");
        fds.filter_map(|entry| entry.ok()?.file_name().into_string().ok())
            .filter(|fd| {
                let Ok(link) = std::fs::read_link(format!("/proc/self/fd/{fd}")) else {
                    return false;
                };
                let info = || std::fs::read_to_string(format!("/proc/self/fdinfo/{fd}"));
                link == Path::new(&slave)
                    || (link == Path::new("/dev/ptmx") && info().is_ok_and(|i| i.contains(&master)))
            })
            .count()
    }

    #[tokio::test]
    async fn pty_answers_echo_hello() {
        let _ptys = PTYS.lock().await;
        let mut terminal = open(&private()).expect("opening the default shell");
        terminal.writer.write_all(b"echo hel''lo\n").await.unwrap();
        read_until(&mut *terminal.reader, |out| answered(out, "hello")).await;
        timeout(LIMIT, terminal.control.close())
            .await
            .expect("close timed out");
    }

    #[tokio::test]
    async fn pty_reader_hits_eof_after_exit() {
        let _ptys = PTYS.lock().await;
        let (mut terminal, pid) = spawn(&sh()).unwrap();
        terminal.writer.write_all(b"exit\n").await.unwrap();
        let mut rest = Vec::new();
        let read = timeout(LIMIT, terminal.reader.read_to_end(&mut rest)).await;
        read.expect("no EOF after exit").expect("reading to EOF");
        // EOF started the reap by itself: the shell does not stay a zombie.
        wait_until("the exited shell is reaped", || reaped(pid)).await;
    }

    #[tokio::test]
    async fn the_shell_exit_is_seen_while_a_background_job_holds_the_pty() {
        let _ptys = PTYS.lock().await;
        let (mut terminal, pid) = spawn(&sh()).unwrap();
        terminal
            .writer
            .write_all(b"sleep 1000 & echo \"bg=$!:end\"\n")
            .await
            .unwrap();
        let output = read_until(&mut *terminal.reader, |out| answered(out, ":end")).await;
        let (_, rest) = output.rsplit_once("bg=").unwrap();
        let background: libc::pid_t = rest.split(':').next().unwrap().parse().unwrap();
        terminal.writer.write_all(b"exit\n").await.unwrap();
        timeout(LIMIT, &mut terminal.exited)
            .await
            .expect("the shell's exit was not seen");
        assert!(
            tree_members(pid).contains(&background),
            "the background job should outlive the shell until the terminal is closed"
        );
        timeout(LIMIT, terminal.control.close())
            .await
            .expect("close timed out");
        assert!(reaped(pid), "the shell was not reaped");
        assert_eq!(
            tree_members(pid),
            Vec::<libc::pid_t>::new(),
            "processes left"
        );
    }

    #[tokio::test]
    async fn close_kills_the_whole_process_group_and_reaps() {
        let _ptys = PTYS.lock().await;
        let (mut terminal, pid) = spawn(&sh()).unwrap();
        terminal.writer.write_all(b"tty\n").await.unwrap();
        let output = read_until(&mut *terminal.reader, |out| pts_index(out).is_some()).await;
        let index = pts_index(&output).unwrap();
        assert!(
            fds_of_pty(index) > 0,
            "cannot see the terminal's descriptors"
        );

        terminal
            .writer
            .write_all(b"sleep 1000 &\nsleep 1000\n")
            .await
            .unwrap();
        wait_until("the shell and both sleeps run", || {
            tree_members(pid).len() >= 3
        })
        .await;
        // SAFETY: getpgid only reads.
        let grouped_apart = tree_members(pid)
            .into_iter()
            .any(|p| unsafe { libc::getpgid(p) } != pid);
        assert!(
            grouped_apart,
            "job control should give jobs process groups of their own"
        );

        let closing = terminal.control.close();
        let again = terminal.control.close();
        timeout(LIMIT, closing).await.expect("close timed out");
        timeout(LIMIT, again).await.expect("second close timed out");

        assert_eq!(
            tree_members(pid),
            Vec::<libc::pid_t>::new(),
            "processes left"
        );
        // The killed jobs may stay zombies of an init that does not reap, which
        // `killpg(pgid, 0)` still counts: hence the check above, through /proc.
        assert!(reaped(pid), "the shell was not reaped");
        drop(terminal);
        assert_eq!(
            fds_of_pty(index),
            0,
            "descriptors of the closed pty are left open"
        );
    }

    #[tokio::test]
    async fn close_ends_a_shell_that_ignores_hangup() {
        let _ptys = PTYS.lock().await;
        let (mut terminal, pid) = spawn(&sh()).unwrap();
        terminal
            .writer
            .write_all(b"trap '' HUP; echo trap''ped\n")
            .await
            .unwrap();
        read_until(&mut *terminal.reader, |out| answered(out, "trapped")).await;
        timeout(LIMIT, terminal.control.close())
            .await
            .expect("close timed out");
        assert!(reaped(pid), "the shell was not reaped");
    }

    #[tokio::test]
    async fn resize_changes_stty_size() {
        let _ptys = PTYS.lock().await;
        let mut terminal = open(&sh()).unwrap();
        terminal.writer.write_all(b"stty size\n").await.unwrap();
        read_until(&mut *terminal.reader, |out| answered(out, "24 80")).await;
        terminal
            .control
            .resize(Size {
                cols: 100,
                rows: 30,
            })
            .unwrap();
        terminal.writer.write_all(b"stty size\n").await.unwrap();
        read_until(&mut *terminal.reader, |out| answered(out, "30 100")).await;
    }

    #[tokio::test]
    async fn spec_sets_cwd_env_and_term() {
        let _ptys = PTYS.lock().await;
        let dir = std::env::temp_dir().canonicalize().unwrap();
        let mut spec = sh();
        spec.cwd = Some(dir.clone());
        spec.env.push(("JOB_VAR".into(), "job value".into()));
        let mut terminal = open(&spec).unwrap();
        let command = b"echo \"$(pwd)|$JOB_VAR|$TERM\"\n";
        terminal.writer.write_all(command).await.unwrap();
        let expected = format!("{}|job value|xterm-256color", dir.display());
        read_until(&mut *terminal.reader, |out| answered(out, &expected)).await;
    }

    #[tokio::test]
    async fn a_missing_cwd_is_an_error() {
        let spec = TerminalSpec {
            cwd: Some("/nonexistent/dir".into()),
            ..sh()
        };
        let error = open(&spec).err().expect("a missing cwd was accepted");
        assert_eq!(error.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn idle_terminals_hold_no_thread() {
        let _ptys = PTYS.lock().await;
        let threads = || std::fs::read_dir("/proc/self/task").unwrap().count();
        let before = threads();
        let terminals: Vec<Terminal> = (0..20).map(|_| open(&sh()).unwrap()).collect();
        // Other tests run in parallel: allow for a few threads of theirs.
        assert!(threads() < before + 10, "20 idle terminals started threads");
        for terminal in &terminals {
            timeout(LIMIT, terminal.control.close())
                .await
                .expect("close timed out");
        }
    }

    #[test]
    fn open_outside_a_runtime_is_an_error() {
        assert!(open(&sh()).is_err());
    }

    #[test]
    fn drop_outside_a_runtime_still_reaps() {
        let _ptys = PTYS.blocking_lock();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let (terminal, pid) = runtime.block_on(async { spawn(&sh()).unwrap() });
        drop(runtime);
        drop(terminal);
        let deadline = Instant::now() + LIMIT;
        while !reaped(pid) {
            assert!(
                Instant::now() < deadline,
                "the dropped terminal's shell was not reaped"
            );
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

//! The runner's machine in the world: the impl's simulated machine, counted,
//! so that invariants can say how many terminals were opened and are still open
//! (a shell spawned for a refused request is a bug: EX-1).

use std::io;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use session_server::machine::sim::SimMachine;
use session_server::machine::{Machine, ScriptRun, ScriptSpec};
use session_server::terminal::{Closing, Size, Terminal, TerminalControl, TerminalSpec};

#[derive(Clone, Default)]
pub struct Counters {
    opened: Arc<AtomicUsize>,
    live: Arc<AtomicUsize>,
}

impl Counters {
    /// Terminals opened so far.
    pub fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    /// Terminals opened and not closed yet.
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }
}

pub struct CountingMachine(pub Counters);

impl Machine for CountingMachine {
    fn run_script(&self, spec: &ScriptSpec) -> io::Result<ScriptRun> {
        SimMachine.run_script(spec)
    }

    fn open_terminal(&self, spec: &TerminalSpec) -> io::Result<Terminal> {
        let mut terminal = SimMachine.open_terminal(spec)?;
        self.0.opened.fetch_add(1, Ordering::SeqCst);
        self.0.live.fetch_add(1, Ordering::SeqCst);
        let inner = std::mem::replace(&mut terminal.control, Box::new(Noop));
        terminal.control = Box::new(Counted {
            inner,
            live: self.0.live.clone(),
            closed: AtomicBool::new(false),
        });
        Ok(terminal)
    }
}

struct Counted {
    inner: Box<dyn TerminalControl>,
    live: Arc<AtomicUsize>,
    closed: AtomicBool,
}

impl Counted {
    fn count_close(&self) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            self.live.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl TerminalControl for Counted {
    fn resize(&self, size: Size) -> io::Result<()> {
        self.inner.resize(size)
    }

    fn close(&self) -> Closing {
        self.count_close();
        self.inner.close()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.count_close();
    }
}

/// Stands in for a moment while the real control is being wrapped.
struct Noop;

impl TerminalControl for Noop {
    fn resize(&self, _: Size) -> io::Result<()> {
        Ok(())
    }
    fn close(&self) -> Closing {
        Box::pin(std::future::ready(()))
    }
}

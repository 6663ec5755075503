//! How a campaign shows it is alive: a bar redrawn in place on a terminal, a
//! plain line every so many cases elsewhere (CI logs keep every carriage
//! return, so a redrawn bar fills them), or nothing.

use std::io::{IsTerminal, Write};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Off,
    /// Redrawn in place (`\r`): for a terminal only.
    Bar,
    /// A line every `LINE_EVERY` cases (or a tenth of a shorter run).
    Lines,
}

impl Progress {
    /// A bar if stderr is a terminal, else lines.
    pub fn for_stderr() -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::Bar
        } else {
            Progress::Lines
        }
    }
}

/// Cases between two plain lines.
pub const LINE_EVERY: u64 = 1000;

pub struct Meter {
    mode: Progress,
    /// Cases in the campaign, if it is a count.
    total: Option<u64>,
    duration: Option<Duration>,
    every: u64,
    shown: u64,
    out: Box<dyn Write>,
}

impl Meter {
    pub fn new(mode: Progress, total: Option<u64>, duration: Option<Duration>) -> Meter {
        Meter::to(Box::new(std::io::stderr()), mode, total, duration)
    }

    pub fn to(
        out: Box<dyn Write>,
        mode: Progress,
        total: Option<u64>,
        duration: Option<Duration>,
    ) -> Meter {
        let every = match (mode, total) {
            (Progress::Bar, Some(total)) => (total / 100).max(1),
            (Progress::Bar, None) => 50,
            (_, Some(total)) => (total / 10).clamp(1, LINE_EVERY),
            (_, None) => LINE_EVERY,
        };
        Meter {
            mode,
            total,
            duration,
            every,
            shown: 0,
            out,
        }
    }

    /// `done` cases have finished after `elapsed`.
    pub fn tick(&mut self, done: u64, elapsed: Duration) {
        if self.mode == Progress::Off || done < self.shown + self.every {
            return;
        }
        self.shown = done;
        let rate = done as f64 / elapsed.as_secs_f64().max(1e-9);
        let of = match (self.total, self.duration) {
            (Some(total), _) => format!("{done}/{total} lifecycles"),
            (None, Some(d)) => format!(
                "{done} lifecycles, {:.0}s of {:.0}s",
                elapsed.as_secs_f64(),
                d.as_secs_f64()
            ),
            (None, None) => format!("{done} lifecycles"),
        };
        let _ = match self.mode {
            Progress::Bar => {
                const WIDTH: u64 = 30;
                let filled = match (self.total, self.duration) {
                    (Some(total), _) => done * WIDTH / total.max(1),
                    (None, Some(d)) => {
                        (elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9) * WIDTH as f64) as u64
                    }
                    (None, None) => 0,
                }
                .min(WIDTH) as usize;
                let bar = format!(
                    "{}{}",
                    "=".repeat(filled),
                    " ".repeat(WIDTH as usize - filled)
                );
                write!(self.out, "\r[{bar}] {of}, {rate:.0}/s")
            }
            _ => writeln!(self.out, "fuzz: {of}, {rate:.0}/s"),
        };
        let _ = self.out.flush();
    }

    /// Ends the bar's line.
    pub fn finish(&mut self) {
        if self.mode == Progress::Bar && self.shown > 0 {
            let _ = writeln!(self.out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn shown(mode: Progress, total: Option<u64>, duration: Option<Duration>) -> String {
        let out = Shared::default();
        let mut meter = Meter::to(Box::new(out.clone()), mode, total, duration);
        for done in 1..=3000 {
            meter.tick(done, Duration::from_millis(done));
        }
        meter.finish();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        text
    }

    #[test]
    fn lines_have_no_carriage_returns_and_come_every_so_many_cases() {
        let text = shown(Progress::Lines, None, Some(Duration::from_secs(600)));
        assert!(!text.contains('\r'), "{text:?}");
        assert_eq!(text.lines().count(), 3, "{text}");
        assert!(
            text.starts_with("fuzz: 1000 lifecycles, 1s of 600s, 1000/s\n"),
            "{text}"
        );
        let text = shown(Progress::Lines, Some(3000), None);
        assert_eq!(text.lines().count(), 10, "{text}");
        assert!(
            text.ends_with("fuzz: 3000/3000 lifecycles, 1000/s\n"),
            "{text}"
        );
    }

    #[test]
    fn a_bar_redraws_in_place_and_off_shows_nothing() {
        let text = shown(Progress::Bar, Some(3000), None);
        assert!(text.starts_with('\r') && text.ends_with('\n'), "{text:?}");
        assert_eq!(text.matches('\n').count(), 1);
        assert_eq!(shown(Progress::Off, Some(3000), None), "");
    }
}

//! Progress on stderr: a live line on a terminal, a line every so often otherwise.

use std::io::{IsTerminal, Write};
use std::time::Instant;

pub struct Progress {
    total: usize,
    start_step: usize,
    started: Instant,
    tty: bool,
    quiet: bool,
    label: &'static str,
    /// Seconds from the start after which the work stops whatever the step (a time budget).
    deadline: Option<f64>,
}

impl Progress {
    pub fn new(label: &'static str, start_step: usize, total: usize, quiet: bool) -> Progress {
        Progress {
            total,
            start_step,
            started: Instant::now(),
            tty: std::io::stderr().is_terminal(),
            quiet,
            label,
            deadline: None,
        }
    }

    /// The work also ends `seconds` from now: the ETA never runs past it.
    pub fn with_deadline(mut self, seconds: Option<f64>) -> Progress {
        self.deadline = seconds.map(|s| s.max(0.0));
        self
    }

    /// Steps per second since the start of this session.
    pub fn rate(&self, step: usize) -> f64 {
        (step - self.start_step) as f64 / self.started.elapsed().as_secs_f64().max(1e-9)
    }

    /// Reports `step`; `force` prints a line even off a terminal.
    pub fn update(&self, step: usize, detail: &str, force: bool) {
        if self.quiet || !(self.tty || force) {
            return;
        }
        let rate = self.rate(step);
        let mut eta = if rate > 0.0 { (self.total - step) as f64 / rate } else { 0.0 };
        if let Some(d) = self.deadline {
            eta = eta.min(d - self.started.elapsed().as_secs_f64());
        }
        let line = format!("{} {step}/{}  {detail}  {rate:.2} steps/s  ETA {}", self.label, self.total, fmt_secs(eta));
        let mut err = std::io::stderr();
        if self.tty {
            let _ = write!(err, "\r\x1b[2K{line}");
            if step == self.total {
                let _ = writeln!(err);
            }
        } else {
            let _ = writeln!(err, "{line}");
        }
        let _ = err.flush();
    }

    /// A line of its own (on a terminal, below the live line).
    pub fn note(&self, text: &str) {
        if self.quiet {
            return;
        }
        let mut err = std::io::stderr();
        if self.tty {
            let _ = writeln!(err, "\r\x1b[2K{} {text}", self.label);
        } else {
            let _ = writeln!(err, "{} {text}", self.label);
        }
        let _ = err.flush();
    }

    pub fn elapsed(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }
}

pub fn fmt_secs(s: f64) -> String {
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

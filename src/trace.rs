//! The call trace: every host call a probe made, in order, with its outcome and duration, and the
//! named checks with the calls that belong to them.
//!
//! It is what lets the verdict line say *what* failed (`GET … -> 503`) rather than "false", and it
//! is shared with the watchdog thread, which reads the call in flight when the deadline passes.

use std::{
    ops::Range,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use crate::deadline::human;

/// Where in the script something happened (1-based; 0 = unknown).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

impl From<rhai::Position> for Pos {
    fn from(p: rhai::Position) -> Self {
        Pos {
            line: p.line().unwrap_or(0),
            col: p.position().unwrap_or(0),
        }
    }
}

impl Pos {
    pub fn is_known(&self) -> bool {
        self.line > 0
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    /// Still running (what the watchdog sees when it fires).
    Pending,
    /// Returned a result that looks healthy (`200`, `connected`, `0.42`).
    Pass(String),
    /// Returned a result that looks failed (`503`, `refused`): the script decides, but the
    /// verdict line names these first when the probe is unhealthy.
    Fail(String),
    /// Threw: a transport failure or a bad argument.
    Error(String),
}

#[derive(Clone, Debug)]
pub struct Call {
    /// The script function, e.g. `http_get`.
    pub function: &'static str,
    /// What was asked, secrets masked: `GET http://127.0.0.1:8080/health`, `load_avg(1)`.
    pub what: String,
    pub outcome: Outcome,
    pub elapsed: Duration,
    pub pos: Pos,
}

impl Call {
    /// `GET http://… -> 503`, the form the verdict line and logs use.
    pub fn short(&self) -> String {
        match &self.outcome {
            Outcome::Pending => format!("{} (in flight)", self.what),
            Outcome::Pass(r) | Outcome::Fail(r) => format!("{} -> {r}", self.what),
            Outcome::Error(e) => format!("{}: {e}", self.what),
        }
    }

    pub fn failed(&self) -> bool {
        matches!(self.outcome, Outcome::Fail(_) | Outcome::Error(_))
    }
}

#[derive(Clone, Debug)]
pub struct Check {
    pub name: String,
    pub passed: bool,
    /// Why it failed when that is not a call's result: the error its closure threw.
    pub error: Option<String>,
    /// The calls made since the previous check ended: a check's own evidence.
    pub calls: Range<usize>,
    pub pos: Pos,
    /// How its rule counted it (`failing for 47 s of its 3 m grace`), for a check with one.
    pub note: Option<String>,
}

#[derive(Debug)]
pub struct Inner {
    pub calls: Vec<Call>,
    pub checks: Vec<Check>,
    /// Index of the first call not yet claimed by a check.
    unclaimed: usize,
    /// What the run was doing when no call is in flight, for the watchdog's reason.
    pub phase: &'static str,
    /// What state the run read and wrote (see `state`), for `explain` and JSON output.
    pub state: Vec<String>,
}

impl Default for Inner {
    fn default() -> Self {
        Inner {
            calls: Vec::new(),
            checks: Vec::new(),
            unclaimed: 0,
            phase: "while reading the script",
            state: Vec::new(),
        }
    }
}

/// A cheap handle on the shared trace.
#[derive(Clone, Debug, Default)]
pub struct Trace(Arc<Mutex<Inner>>);

impl Trace {
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; the data is still the
        // best account of what happened, and the verdict must still be printed.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn begin(&self, function: &'static str, what: String, pos: Pos) -> usize {
        let mut t = self.lock();
        t.calls.push(Call {
            function,
            what,
            outcome: Outcome::Pending,
            elapsed: Duration::ZERO,
            pos,
        });
        t.calls.len() - 1
    }

    pub fn finish(&self, index: usize, outcome: Outcome, elapsed: Duration, source: &str) {
        let mut t = self.lock();
        let call = &mut t.calls[index];
        call.outcome = outcome;
        call.elapsed = elapsed;
        log::info!(
            "{} in {} ({source}:{}:{})",
            call.short(),
            human(elapsed),
            call.pos.line,
            call.pos.col
        );
    }

    pub fn record_check(
        &self,
        name: &str,
        passed: bool,
        error: Option<String>,
        pos: Pos,
        source: &str,
    ) {
        self.record_judged_check(name, passed, error, pos, source, None);
    }

    /// As [`Trace::record_check`], for a check whose rule (`grace`, `failures`) decided how its
    /// result counts, with the words for it.
    pub fn record_judged_check(
        &self,
        name: &str,
        passed: bool,
        error: Option<String>,
        pos: Pos,
        source: &str,
        note: Option<String>,
    ) {
        let mut t = self.lock();
        let calls = t.unclaimed..t.calls.len();
        t.unclaimed = t.calls.len();
        let check = Check {
            name: name.to_string(),
            passed,
            error,
            calls,
            pos,
            note,
        };
        if passed && check.note.is_some() {
            log::info!(
                "check {name:?} passed: {} ({source}:{}:{})",
                t.explain(&check),
                pos.line,
                pos.col
            );
        } else if passed {
            log::info!("check {name:?} passed ({source}:{}:{})", pos.line, pos.col);
        } else {
            log::info!(
                "check {name:?} FAILED: {} ({source}:{}:{})",
                t.explain(&check),
                pos.line,
                pos.col
            );
        }
        t.checks.push(check);
    }

    /// Empty the trace for the next evaluation (`serve`), returning what it held.
    pub fn take(&self) -> Inner {
        std::mem::take(&mut *self.lock())
    }

    /// A trace holding `inner`: a finished evaluation, kept for reporting.
    pub fn of(inner: Inner) -> Trace {
        Trace(Arc::new(Mutex::new(inner)))
    }

    pub fn set_phase(&self, phase: &'static str) {
        self.lock().phase = phase;
    }

    /// The call still in flight, if any.
    pub fn pending(&self) -> Option<Call> {
        let t = self.lock();
        t.calls
            .iter()
            .rev()
            .find(|c| c.outcome == Outcome::Pending)
            .cloned()
    }

    /// The call the deadline caught: the one in flight, or, when it has just been stopped by
    /// the deadline and the run is on its way to report it, that one. What the watchdog names:
    /// a call that ends a little after the deadline (a socket timeout the kernel's timer wheel
    /// rounds up) must not become "while the script was running" because the watchdog looked a
    /// moment after it finished.
    pub fn at_deadline(&self) -> Option<Call> {
        let t = self.lock();
        let last = t.calls.last()?;
        match &last.outcome {
            Outcome::Pending => Some(last.clone()),
            Outcome::Error(e) if e == crate::host::DEADLINE_PASSED => Some(last.clone()),
            _ => t
                .calls
                .iter()
                .rev()
                .find(|c| c.outcome == Outcome::Pending)
                .cloned(),
        }
    }
}

impl Inner {
    /// Why a check failed, from its error or its calls: failed calls first, else every call's
    /// result (`load_avg() -> 7.9, cpu_count() -> 2`), else nothing to add.
    pub fn explain(&self, check: &Check) -> String {
        match &check.note {
            Some(note) => format!("{note}: {}", self.evidence(check)),
            None => self.evidence(check),
        }
    }

    /// What a check's result rests on: the error its closure threw, its failed calls, or its
    /// calls and a false condition.
    fn evidence(&self, check: &Check) -> String {
        if let Some(error) = &check.error {
            return error.clone();
        }
        let calls = &self.calls[check.calls.clone()];
        let failed: Vec<String> = calls
            .iter()
            .filter(|c| c.failed())
            .map(Call::short)
            .collect();
        if !failed.is_empty() {
            return failed.join(", ");
        }
        let all: Vec<String> = calls.iter().map(Call::short).collect();
        if all.is_empty() {
            "condition was false".to_string()
        } else {
            format!("condition was false: {}", all.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_claim_the_calls_made_since_the_previous_one() {
        let t = Trace::default();
        let a = t.begin("load_avg", "load_avg(1)".into(), Pos::default());
        t.finish(a, Outcome::Pass("7.90".into()), Duration::ZERO, "t");
        let b = t.begin("cpu_count", "cpu_count()".into(), Pos::default());
        t.finish(b, Outcome::Pass("2".into()), Duration::ZERO, "t");
        t.record_check("load", false, None, Pos::default(), "t");
        let c = t.begin("http_get", "GET http://x/".into(), Pos::default());
        t.finish(c, Outcome::Fail("503".into()), Duration::ZERO, "t");
        t.record_check("health", false, None, Pos::default(), "t");
        let inner = t.lock();
        assert_eq!(inner.checks[0].calls, 0..2);
        assert_eq!(inner.checks[1].calls, 2..3);
        assert_eq!(
            inner.explain(&inner.checks[0]),
            "condition was false: load_avg(1) -> 7.90, cpu_count() -> 2"
        );
        assert_eq!(inner.explain(&inner.checks[1]), "GET http://x/ -> 503");
    }

    #[test]
    fn the_call_the_deadline_stopped_is_named_after_it_finished() {
        let t = Trace::default();
        let a = t.begin("load_avg", "load_avg()".into(), Pos::default());
        t.finish(a, Outcome::Pass("0.1".into()), Duration::ZERO, "t");
        assert!(t.at_deadline().is_none());
        let b = t.begin("sql_ping", "sql_ping(mysql://x)".into(), Pos::default());
        assert_eq!(t.at_deadline().unwrap().what, "sql_ping(mysql://x)");
        // Host::call has recorded the deadline, the verdict is not out yet: still that call.
        t.finish(
            b,
            Outcome::Error(crate::host::DEADLINE_PASSED.into()),
            Duration::ZERO,
            "t",
        );
        assert_eq!(t.at_deadline().unwrap().what, "sql_ping(mysql://x)");
        assert!(t.pending().is_none());
    }

    #[test]
    fn pending_call_is_visible() {
        let t = Trace::default();
        t.begin(
            "tcp_open",
            "tcp_open(10.0.0.1, 5432)".into(),
            Pos::default(),
        );
        assert_eq!(
            t.pending().unwrap().short(),
            "tcp_open(10.0.0.1, 5432) (in flight)"
        );
    }
}

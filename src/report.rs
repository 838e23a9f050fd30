//! The verdict as it leaves the process: one line on stdout (or one JSON document), the
//! diagnostic with its caret on stderr, and the verdict in the log file.
//!
//! kubelet puts the first 10 KiB of a failed exec probe's output into the pod's event, so the
//! line is capped and every secret is scrubbed. Either the main thread or the watchdog emits,
//! never both.

use std::{
    io::{IsTerminal, Write},
    sync::atomic::{AtomicBool, Ordering},
};

use serde_json::{json, Value};

use crate::{
    cli::Format,
    deadline::human,
    probe::Verdict,
    redact,
    trace::{Outcome, Trace},
};

/// The verdict line never exceeds this many characters.
const MAX_LINE: usize = 2000;

static EMITTED: AtomicBool = AtomicBool::new(false);

#[derive(Clone)]
pub struct Reporter {
    pub format: Format,
    pub source: String,
    pub deadline_ms: f64,
}

impl Reporter {
    /// Print the verdict; `false` if another thread already did.
    pub fn emit(&self, verdict: &Verdict, trace: &Trace, script_text: Option<&str>) -> bool {
        if EMITTED.swap(true, Ordering::SeqCst) {
            return false;
        }
        let line = verdict_line(verdict);
        log::info!(target: crate::logging::VERDICT, "{line}");
        if let (Some(d), Some(text), Format::Text) = (&verdict.diagnostic, script_text, self.format)
        {
            let color = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
            let rendered = d.render(&self.source, text, color);
            let _ = std::io::stderr().write_all(redact::scrub(&rendered).as_bytes());
        }
        let out = match self.format {
            Format::Text => line,
            Format::Json => self.json(verdict, trace).to_string(),
        };
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{out}");
        let _ = stdout.flush();
        true
    }

    pub fn json(&self, verdict: &Verdict, trace: &Trace) -> Value {
        let t = trace.lock();
        let s = |text: &str| Value::from(redact::scrub(text).into_owned());
        let calls: Vec<Value> = t
            .calls
            .iter()
            .map(|c| {
                let (outcome, result) = match &c.outcome {
                    Outcome::Pending => ("pending", ""),
                    Outcome::Pass(r) => ("pass", r.as_str()),
                    Outcome::Fail(r) => ("fail", r.as_str()),
                    Outcome::Error(r) => ("error", r.as_str()),
                };
                json!({
                    "function": c.function,
                    "what": s(&c.what),
                    "outcome": outcome,
                    "result": s(result),
                    "elapsed_ms": ms(c.elapsed),
                    "line": c.pos.line,
                    "col": c.pos.col,
                })
            })
            .collect();
        let checks: Vec<Value> = t
            .checks
            .iter()
            .map(|c| {
                json!({
                    "name": s(&c.name),
                    "passed": c.passed,
                    "reason": if c.passed { Value::Null } else { s(&t.explain(c)) },
                    "line": c.pos.line,
                    "col": c.pos.col,
                })
            })
            .collect();
        let error = verdict.diagnostic.as_ref().map(|d| {
            json!({
                "message": s(&d.message),
                "line": d.pos.line,
                "col": d.pos.col,
                "notes": d.notes.iter().map(|n| s(n)).collect::<Vec<_>>(),
            })
        });
        json!({
            "verdict": verdict.exit.key(),
            "exit_code": verdict.exit.code(),
            "reason": s(&verdict.reason),
            "script": s(&self.source),
            "value": verdict.value.as_deref().map(s),
            "elapsed_ms": ms(verdict.elapsed),
            "deadline_ms": self.deadline_ms,
            "checks": checks,
            "calls": calls,
            "error": error,
        })
    }
}

/// Colour on stderr only for a terminal, and never with `NO_COLOR` set.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `unhealthy: GET http://127.0.0.1:8080/health -> 503 (liveness.rhai:4:9) in 2.1 ms`
pub fn verdict_line(verdict: &Verdict) -> String {
    let reason = redact::scrub(&verdict.reason);
    let reason = reason.replace(['\n', '\r'], " ");
    let mut line = format!("{}: {reason}", verdict.exit.label());
    if line.chars().count() > MAX_LINE {
        line = line.chars().take(MAX_LINE).collect::<String>() + " …";
    }
    format!("{line} in {}", human(verdict.elapsed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code::Exit;

    #[test]
    fn long_reasons_are_capped_and_one_line() {
        let v = Verdict::new(Exit::Unhealthy, format!("a\nb{}", "x".repeat(5000)));
        let line = verdict_line(&v);
        assert!(line.starts_with("unhealthy: a b"));
        assert!(!line.contains('\n'));
        assert!(line.len() < MAX_LINE + 50);
        assert!(line.ends_with(" … in 0 µs"));
    }
}

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
    /// `explain`: the whole run for a person instead of the one line.
    pub explain: bool,
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
        let out = match (self.format, self.explain) {
            (Format::Text, false) => line,
            (Format::Text, true) => {
                redact::scrub(&self.explain(verdict, trace, &line, stdout_color()))
                    .trim_end()
                    .to_string()
            }
            (Format::Json, false) => self.json(verdict, trace).to_string(),
            (Format::Json, true) => {
                serde_json::to_string_pretty(&self.json(verdict, trace)).unwrap_or_default()
            }
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
                    "reason": if c.passed && c.note.is_none() { Value::Null } else { s(&t.explain(c)) },
                    "rule": c.note.as_deref().map(s),
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
            "state": t.state.iter().map(|n| s(n)).collect::<Vec<_>>(),
        })
    }
}

impl Reporter {
    /// The `explain` report: calls, checks, value, verdict and time, aligned for reading.
    pub fn explain(&self, verdict: &Verdict, trace: &Trace, line: &str, color: bool) -> String {
        use std::fmt::Write as _;
        let paint = |code: &str, text: &str| {
            if color {
                format!("\x1b[{code}m{text}\x1b[0m")
            } else {
                text.to_string()
            }
        };
        let (green, red, yellow, bold, dim) = ("32", "31", "33", "1", "2");
        let t = trace.lock();
        let at = |pos: crate::trace::Pos| {
            if pos.is_known() {
                format!("{}:{}:{}", self.source, pos.line, pos.col)
            } else {
                String::new()
            }
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "{} {} (deadline {})",
            paint(bold, "explain"),
            self.source,
            human(std::time::Duration::from_secs_f64(self.deadline_ms / 1e3))
        );
        let _ = writeln!(out, "\n{}", paint(bold, "calls"));
        if t.calls.is_empty() {
            let _ = writeln!(out, "  (none)");
        }
        let rows: Vec<(&str, String, &str)> = t
            .calls
            .iter()
            .map(|c| match &c.outcome {
                Outcome::Pending => ("…", "in flight".to_string(), yellow),
                Outcome::Pass(r) => ("✓", r.clone(), green),
                Outcome::Fail(r) => ("✗", r.clone(), red),
                Outcome::Error(e) => ("✗", e.clone(), red),
            })
            .collect();
        let width = t
            .calls
            .iter()
            .map(|c| c.what.chars().count())
            .max()
            .unwrap_or(0)
            .min(60);
        let result_width = rows
            .iter()
            .map(|r| r.1.chars().count())
            .max()
            .unwrap_or(0)
            .min(40);
        for (i, (c, (mark, result, code))) in t.calls.iter().zip(&rows).enumerate() {
            let padded = format!("{result:<result_width$}");
            let _ = writeln!(
                out,
                "  {:>2} {} {:<width$}  {}  {:>8}  {}",
                i + 1,
                paint(code, mark),
                c.what,
                paint(code, &padded),
                paint(dim, &human(c.elapsed)),
                paint(dim, &at(c.pos)),
            );
        }
        if !t.checks.is_empty() {
            let _ = writeln!(out, "\n{}", paint(bold, "checks"));
            let width = t
                .checks
                .iter()
                .map(|c| c.name.chars().count())
                .max()
                .unwrap_or(0);
            for c in &t.checks {
                let (mark, code) = if c.passed {
                    ("✓", green)
                } else {
                    ("✗", red)
                };
                let mut row = format!("  {} {:<width$}  ", paint(code, mark), c.name);
                if c.passed && c.note.is_some() {
                    row.push_str(&paint(yellow, &t.explain(c)));
                    row.push_str("  ");
                } else if !c.passed {
                    row.push_str(&paint(code, &t.explain(c)));
                    row.push_str("  ");
                }
                row.push_str(&paint(dim, &at(c.pos)));
                let _ = writeln!(out, "{row}");
            }
        }
        if !t.state.is_empty() {
            let _ = writeln!(out, "\n{}", paint(bold, "state"));
            for note in &t.state {
                let _ = writeln!(out, "  {note}");
            }
        }
        let code = match verdict.exit {
            crate::exit_code::Exit::Healthy => green,
            crate::exit_code::Exit::Unhealthy => red,
            _ => yellow,
        };
        let _ = writeln!(out);
        if let Some(value) = &verdict.value {
            // A script may return true after a named check failed: the checks decide then, and
            // the line says so rather than showing "true" beside "unhealthy".
            let failed: Vec<String> = t
                .checks
                .iter()
                .filter(|c| !c.passed)
                .map(|c| format!("{:?}", c.name))
                .collect();
            let note = if value == "true" && !failed.is_empty() {
                format!(
                    " (but check{} {} failed, and a failed check makes the probe unhealthy)",
                    if failed.len() == 1 { "" } else { "s" },
                    failed.join(", ")
                )
            } else {
                String::new()
            };
            let _ = writeln!(out, "{}    {value}{note}", paint(bold, "value"));
        }
        let _ = writeln!(
            out,
            "{}  {} (exit {})",
            paint(bold, "verdict"),
            paint(code, line),
            verdict.exit.code()
        );
        let used = verdict.elapsed.as_secs_f64() * 1e3;
        let _ = writeln!(
            out,
            "{}     {} of {} ({:.0}%)",
            paint(bold, "time"),
            human(verdict.elapsed),
            human(std::time::Duration::from_secs_f64(self.deadline_ms / 1e3)),
            used / self.deadline_ms.max(f64::MIN_POSITIVE) * 100.0
        );
        out
    }
}

fn stdout_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Colour on stderr only for a terminal, and never with `NO_COLOR` set.
pub fn stderr_color() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// `test --format json|junit`: every case with its verdict, or the one error that kept the
/// cases from running (a JUnit report then holds one failed test case, so that a CI test
/// reporter shows the failure rather than an empty suite).
pub fn test_report(
    format: crate::cli::TestFormat,
    source: &str,
    results: &[crate::testing::CaseResult],
    error: Option<&str>,
) -> String {
    use crate::cli::TestFormat;
    let failed = results.iter().filter(|r| !r.passed).count();
    let s = |text: &str| redact::scrub(text).into_owned();
    match format {
        TestFormat::Text => String::new(),
        TestFormat::Json => {
            let cases: Vec<Value> = results
                .iter()
                .map(|r| {
                    json!({
                        "name": s(&r.name),
                        "passed": r.passed,
                        "verdict": s(&r.verdict),
                        "problem": r.problem.as_deref().map(s),
                        "elapsed_ms": ms(r.elapsed),
                    })
                })
                .collect();
            let report = json!({
                "script": s(source),
                "passed": results.len() - failed,
                "failed": failed,
                "error": error.map(s),
                "cases": cases,
            });
            format!(
                "{}\n",
                serde_json::to_string_pretty(&report).unwrap_or_default()
            )
        }
        TestFormat::Junit => {
            let x = |text: &str| escape_markup(&s(text));
            let total: f64 = results.iter().map(|r| r.elapsed.as_secs_f64()).sum();
            let (tests, failures) = match error {
                Some(_) => (1, 1),
                None => (results.len(), failed),
            };
            let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
            out.push_str(&format!(
                "<testsuites name=\"rhai-probe test\" tests=\"{tests}\" failures=\"{failures}\" time=\"{total:.6}\">\n"
            ));
            out.push_str(&format!(
                "  <testsuite name=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"0\" time=\"{total:.6}\">\n",
                x(source)
            ));
            if let Some(error) = error {
                out.push_str(&format!(
                    "    <testcase name=\"cases file\" classname=\"{}\" time=\"0\">\n      <failure message=\"{}\" type=\"cases\"/>\n    </testcase>\n",
                    x(source),
                    x(error)
                ));
            }
            for r in results {
                out.push_str(&format!(
                    "    <testcase name=\"{}\" classname=\"{}\" time=\"{:.6}\">\n",
                    x(&r.name),
                    x(source),
                    r.elapsed.as_secs_f64()
                ));
                if let Some(problem) = &r.problem {
                    out.push_str(&format!(
                        "      <failure message=\"{}\" type=\"verdict\">{}</failure>\n",
                        x(problem),
                        x(&r.verdict)
                    ));
                } else {
                    out.push_str(&format!(
                        "      <system-out>{}</system-out>\n",
                        x(&r.verdict)
                    ));
                }
                out.push_str("    </testcase>\n");
            }
            out.push_str("  </testsuite>\n</testsuites>\n");
            out
        }
    }
}

/// `check --format json`: each script with its problems.
pub fn check_report(reports: &[(String, Vec<crate::diagnostic::Diagnostic>)]) -> String {
    let s = |text: &str| Value::from(redact::scrub(text).into_owned());
    let scripts: Vec<Value> = reports
        .iter()
        .map(|(name, problems)| {
            json!({
                "script": s(name),
                "ok": problems.is_empty(),
                "problems": problems.iter().map(|d| json!({
                    "line": d.pos.line,
                    "col": d.pos.col,
                    "message": s(&d.message),
                    "notes": d.notes.iter().map(|n| s(n)).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    let ok = reports.iter().all(|(_, p)| p.is_empty());
    serde_json::to_string_pretty(&json!({"ok": ok, "scripts": scripts})).unwrap_or_default()
}

/// Text safe inside XML or HTML, in element content and quoted attributes alike: the five
/// markup characters as entities, control characters (which XML 1.0 has no place for) as spaces.
/// The JUnit report and serve's status page both use it.
pub fn escape_markup(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 has no place for other control characters.
            c if c.is_control() && !matches!(c, '\n' | '\t') => out.push(' '),
            c => out.push(c),
        }
    }
    out
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

//! The status page: `GET /` (every probe's verdict, age, last reason and recent verdicts) and
//! `GET /explain/NAME` (the calls of a probe's last evaluation, as `rhai-probe explain` prints
//! them). For a person at `kubectl port-forward`: HTML for a browser, JSON for
//! `Accept: application/json`, plain text for curl.
//!
//! Both only read: looking at the page never starts an evaluation, so a browser left open
//! adds no load to the peers. The HTML is one document with its style inline and no script
//! (the `Content-Security-Policy` forbids any), and it says everything in words, so it reads the
//! same without colour. Every text that comes from a script, a peer or a file is escaped
//! ([`escape`]) and was scrubbed of secrets before it was stored.

use std::{
    fmt::Write as _,
    time::{Duration, Instant, SystemTime},
};

use serde_json::{json, Value};

use crate::{deadline::human, exit_code::Exit, logging::rfc3339, state::period_text};

use super::{
    worker::{Probe, Recent, Snapshot},
    App,
};

/// What the client asked for, from its `Accept` header.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Wants {
    Html,
    Json,
    Text,
}

impl Wants {
    pub fn of(accept: &str) -> Wants {
        if accept.contains("application/json") {
            Wants::Json
        } else if accept.contains("text/html") {
            Wants::Html
        } else {
            Wants::Text
        }
    }
}

pub use crate::report::escape_markup as escape;

/// Where a probe's report is (probe names are `[A-Za-z0-9_.-]`, so no encoding is needed).
pub fn report_href(name: &str) -> String {
    format!("/explain/{name}")
}

fn unix(wall: SystemTime) -> u64 {
    wall.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ago(at: Instant) -> String {
    format!("{} ago", period_text(at.elapsed().as_secs_f64()))
}

/// `10:52:13` (UTC) of an RFC 3339 time.
fn clock(wall: SystemTime) -> String {
    let full = rfc3339(unix(wall), None);
    full.get(11..19).unwrap_or(&full).to_string()
}

/// A verdict's word and the class its colour hangs on.
fn class(exit: Option<Exit>) -> &'static str {
    match exit {
        Some(Exit::Healthy) => "healthy",
        Some(Exit::Unhealthy) => "unhealthy",
        Some(_) => "fault",
        None => "none",
    }
}

fn label(exit: Option<Exit>) -> &'static str {
    exit.map_or("not evaluated yet", Exit::label)
}

fn mark(exit: Exit) -> &'static str {
    match exit {
        Exit::Healthy => "✓",
        Exit::Unhealthy => "✗",
        _ => "!",
    }
}

/// The reason part of a verdict line (`unhealthy: REASON in 2.1 ms` → `REASON in 2.1 ms`).
fn reason(line: &str) -> &str {
    line.split_once(": ").map_or(line, |(_, rest)| rest)
}

struct Row {
    probe: std::sync::Arc<Probe>,
    snap: Snapshot,
}

impl Row {
    fn exit(&self) -> Option<Exit> {
        self.snap.last.as_ref().map(|a| a.verdict.exit)
    }
}

fn rows(app: &App) -> Vec<Row> {
    app.probes()
        .into_iter()
        .map(|probe| Row {
            snap: probe.snapshot(),
            probe,
        })
        .collect()
}

/// `2 of 3 probes healthy`.
fn summary(rows: &[Row]) -> String {
    let healthy = rows
        .iter()
        .filter(|r| r.exit() == Some(Exit::Healthy))
        .count();
    format!(
        "{healthy} of {} probe{} healthy",
        rows.len(),
        if rows.len() == 1 { "" } else { "s" }
    )
}

fn recent_json(recent: &[Recent]) -> Vec<Value> {
    recent
        .iter()
        .rev()
        .map(|r| {
            json!({
                "at": rfc3339(unix(r.wall), None),
                "ago_ms": ms(r.at.elapsed()),
                "verdict": r.exit.key(),
                "exit_code": r.exit.code(),
                "healthy": r.exit == Exit::Healthy,
                "line": r.line,
            })
        })
        .collect()
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e3).round()
}

/// `GET /` as JSON: the page's content, newest verdicts first.
pub fn page_json(app: &App) -> String {
    let rows = rows(app);
    let probes: Vec<Value> = rows
        .iter()
        .map(|r| {
            let last = r.snap.last.as_ref();
            json!({
                "probe": r.probe.name,
                "script": r.probe.reporter.source,
                "verdict": last.map(|a| a.verdict.exit.key()),
                "exit_code": last.map(|a| a.verdict.exit.code()),
                "healthy": last.map(|a| a.healthy()),
                "line": last.map(|a| a.line.as_str()),
                "at": last.map(|a| rfc3339(unix(a.wall), None)),
                "age_ms": last.map(|a| ms(a.at.elapsed())),
                "evaluating_ms": r.snap.evaluating.map(|t| ms(t.elapsed())),
                "evaluations": r.snap.evaluations,
                "reload_problem": r.snap.reload_problem,
                "report": report_href(&r.probe.name),
                "recent": recent_json(&r.snap.recent),
            })
        })
        .collect();
    let doc = json!({
        "summary": summary(&rows),
        "healthy": rows.iter().all(|r| r.exit() == Some(Exit::Healthy)),
        "cache_ms": ms(app.cache),
        "deadline_ms": ms(app.timeout),
        "probes": probes,
    });
    format!("{doc}\n")
}

/// `GET /` as plain text, for curl: one line per probe, then the routes.
pub fn page_text(app: &App) -> String {
    let rows = rows(app);
    let mut out = format!(
        "rhai-probe serve: {} (cache {}, deadline {})\n\n",
        summary(&rows),
        human(app.cache),
        human(app.timeout)
    );
    let width = rows.iter().map(|r| r.probe.name.len()).max().unwrap_or(0);
    for r in &rows {
        let _ = write!(out, "{:<width$}  ", r.probe.name);
        match &r.snap.last {
            Some(a) => {
                let _ = write!(out, "{}  ({})", a.line, ago(a.at));
            }
            None => out.push_str(label(None)),
        }
        if let Some(since) = r.snap.evaluating {
            let _ = write!(out, "  [evaluating for {}]", human(since.elapsed()));
        }
        out.push('\n');
        if let Some(problem) = &r.snap.reload_problem {
            let _ = writeln!(out, "{:<width$}  note: {problem}", "");
        }
    }
    out.push_str("\nroutes:\n");
    for r in &rows {
        let _ = writeln!(out, "  /probe/{}", r.probe.name);
    }
    for (route, name) in super::http::ALIASES {
        if rows.iter().any(|r| r.probe.name == name) {
            let _ = writeln!(out, "  {route}");
        }
    }
    out.push_str("  /explain/NAME   the calls of a probe's last evaluation\n");
    out.push_str("  /metrics\n");
    out
}

const STYLE: &str = "\
body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em;max-width:72em;color:#111;background:#fff}\
h1{font-size:1.4em;margin:0 0 .2em}\
p.meta{margin:0 0 1em;color:#444}\
table{border-collapse:collapse;width:100%}\
th,td{text-align:left;vertical-align:top;padding:.45em .6em;border-bottom:1px solid #ccc}\
th{font-size:.85em;color:#444}\
td.reason,pre{overflow-wrap:anywhere;word-break:break-word}\
td.age{white-space:nowrap}\
main+p.meta{margin-top:1em}\
.verdict{font-weight:700;white-space:nowrap;border-radius:.3em;padding:.1em .45em}\
.healthy .verdict,li.healthy{background:#d7f5dc;color:#0a4a17}\
.unhealthy .verdict,li.unhealthy{background:#fbd9d9;color:#7a0c0c}\
.fault .verdict,li.fault{background:#fdecc8;color:#6b4100}\
.none .verdict{background:#eee;color:#333}\
ol.recent{list-style:none;margin:0;padding:0;display:flex;flex-wrap:wrap;gap:.25em}\
ol.recent li{font-size:.85em;padding:0 .35em;border-radius:.25em;white-space:nowrap}\
.note{color:#6b4100;font-size:.9em}\
small{color:#555;overflow-wrap:anywhere}\
pre{background:#f6f6f6;padding:.8em;white-space:pre-wrap;font-size:.9em}\
@media (max-width:40em){\
thead{display:none}\
table,tbody,tr,td{display:block;width:auto}\
tr{border:1px solid #ccc;border-radius:.4em;margin:0 0 .8em;padding:.3em}\
td{border:0;padding:.25em .4em}\
td[data-label]::before{content:attr(data-label) \": \";font-size:.85em;color:#444}\
}";

fn head(out: &mut String, title: &str, refresh: Option<u32>) {
    out.push_str("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n");
    out.push_str("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n");
    if let Some(secs) = refresh {
        let _ = writeln!(out, "<meta http-equiv=\"refresh\" content=\"{secs}\">");
    }
    let _ = writeln!(out, "<title>{}</title>", escape(title));
    let _ = writeln!(out, "<style>{STYLE}</style>\n</head>\n<body>");
}

/// `?refresh=N` (1 to 3600 seconds): the page reloads itself (a meta refresh, no script).
pub fn refresh_of(query: Option<&str>) -> Option<u32> {
    query?
        .split('&')
        .find_map(|kv| kv.strip_prefix("refresh="))
        .and_then(|v| v.parse().ok())
        .filter(|s| (1..=3600).contains(s))
}

/// `GET /` as HTML.
pub fn page_html(app: &App, refresh: Option<u32>) -> String {
    let rows = rows(app);
    let now = rfc3339(unix(SystemTime::now()), None);
    let summary = summary(&rows);
    let mut out = String::with_capacity(4096 + rows.len() * 2048);
    head(&mut out, &format!("rhai-probe: {summary}"), refresh);
    let _ = writeln!(out, "<header>\n<h1>rhai-probe serve</h1>");
    let _ = writeln!(
        out,
        "<p class=\"meta\">{} · as of <time datetime=\"{now}\">{now}</time> · cache {} · deadline {} · {}</p>\n</header>",
        escape(&summary),
        escape(&human(app.cache)),
        escape(&human(app.timeout)),
        match refresh {
            Some(s) => format!("refreshing every {s} s (<a href=\"/\">stop</a>)"),
            None => "<a href=\"/?refresh=5\">refresh every 5 s</a>".to_string(),
        }
    );
    out.push_str("<main>\n<table>\n<thead><tr><th>Probe</th><th>Verdict</th><th>Age</th><th>Last reason</th><th>Recent verdicts (newest first)</th></tr></thead>\n<tbody>\n");
    for r in &rows {
        let name = escape(&r.probe.name);
        let exit = r.exit();
        let _ = writeln!(out, "<tr class=\"{}\" id=\"probe-{name}\">", class(exit));
        let _ = writeln!(
            out,
            "<td data-label=\"Probe\"><a href=\"{}\">{name}</a><br><small>{}</small></td>",
            escape(&report_href(&r.probe.name)),
            escape(&r.probe.reporter.source)
        );
        let _ = writeln!(
            out,
            "<td data-label=\"Verdict\"><span class=\"verdict\">{}</span></td>",
            escape(label(exit))
        );
        match &r.snap.last {
            Some(a) => {
                let _ = writeln!(
                    out,
                    "<td data-label=\"Age\" class=\"age\"><time datetime=\"{}\">{}</time></td>",
                    rfc3339(unix(a.wall), None),
                    escape(&ago(a.at))
                );
                let _ = write!(
                    out,
                    "<td data-label=\"Last reason\" class=\"reason\">{}",
                    escape(reason(&a.line))
                );
            }
            None => {
                out.push_str("<td data-label=\"Age\">–</td>\n");
                out.push_str("<td data-label=\"Last reason\" class=\"reason\">no request has asked for it yet");
            }
        }
        if let Some(since) = r.snap.evaluating {
            let _ = write!(
                out,
                "<br><span class=\"note\">evaluating for {}</span>",
                escape(&human(since.elapsed()))
            );
        }
        if let Some(problem) = &r.snap.reload_problem {
            let _ = write!(out, "<br><span class=\"note\">{}</span>", escape(problem));
        }
        out.push_str("</td>\n<td data-label=\"Recent\"><ol class=\"recent\">");
        for recent in r.snap.recent.iter().rev() {
            let _ = write!(
                out,
                "<li class=\"{}\" title=\"{}\"><time datetime=\"{}\">{}</time> {} {}</li>",
                class(Some(recent.exit)),
                escape(&recent.line),
                rfc3339(unix(recent.wall), None),
                clock(recent.wall),
                mark(recent.exit),
                escape(recent.exit.label())
            );
        }
        out.push_str("</ol></td>\n</tr>\n");
    }
    out.push_str("</tbody>\n</table>\n</main>\n");
    out.push_str("<p class=\"meta\">Times are UTC. This page only reads: it never starts an evaluation. JSON: <code>curl -H 'Accept: application/json' …/</code>; a probe's verdict: <code>/probe/NAME</code>; metrics: <a href=\"/metrics\">/metrics</a>.</p>\n</body>\n</html>\n");
    out
}

/// The explain-style text of a probe's last evaluation, secrets scrubbed; `None` before its first.
fn report_text(probe: &Probe, snap: &Snapshot) -> Option<String> {
    let a = snap.last.as_ref()?;
    let text = probe.reporter.explain(&a.verdict, &a.trace, &a.line, false);
    Some(crate::redact::scrub(&text).trim_end().to_string())
}

const NOT_YET: &str =
    "no evaluation yet: this page shows the last one, and none has run (GET /probe/NAME runs one)";

/// `GET /explain/NAME` as plain text.
pub fn report_plain(probe: &Probe) -> String {
    let snap = probe.snapshot();
    match report_text(probe, &snap) {
        Some(text) => format!(
            "probe {} (evaluated {})\n\n{text}\n",
            probe.name,
            ago(snap.last.as_ref().map_or_else(Instant::now, |a| a.at))
        ),
        None => format!(
            "probe {}: {}\n",
            probe.name,
            NOT_YET.replace("NAME", &probe.name)
        ),
    }
}

/// `GET /explain/NAME` as JSON: `/probe/NAME`'s document for the last evaluation, `null` before one.
pub fn report_json(probe: &Probe) -> String {
    let snap = probe.snapshot();
    let doc = match &snap.last {
        Some(a) => {
            let mut doc = probe.reporter.json(&a.verdict, &a.trace);
            doc["probe"] = probe.name.clone().into();
            doc["at"] = rfc3339(unix(a.wall), None).into();
            doc["age_ms"] = ms(a.at.elapsed()).into();
            doc
        }
        None => json!({ "probe": probe.name, "verdict": Value::Null }),
    };
    format!("{doc}\n")
}

/// `GET /explain/NAME` as HTML.
pub fn report_html(probe: &Probe) -> String {
    let snap = probe.snapshot();
    let exit = snap.last.as_ref().map(|a| a.verdict.exit);
    let name = escape(&probe.name);
    let mut out = String::with_capacity(8192);
    head(
        &mut out,
        &format!("rhai-probe: {} {}", probe.name, label(exit)),
        None,
    );
    let _ = writeln!(
        out,
        "<header>\n<p><a href=\"/\">← all probes</a></p>\n<h1>Probe {name}</h1>"
    );
    let _ = write!(
        out,
        "<p class=\"meta {}\"><span class=\"verdict\">{}</span> · <small>{}</small>",
        class(exit),
        escape(label(exit)),
        escape(&probe.reporter.source)
    );
    if let Some(a) = &snap.last {
        let at = rfc3339(unix(a.wall), None);
        let _ = write!(
            out,
            " · evaluated <time datetime=\"{at}\">{at}</time> ({})",
            escape(&ago(a.at))
        );
    }
    out.push_str("</p>\n</header>\n<main>\n");
    if let Some(problem) = &snap.reload_problem {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", escape(problem));
    }
    match report_text(probe, &snap) {
        Some(text) => {
            let _ = writeln!(out, "<pre>{}</pre>", escape(&text));
        }
        None => {
            let _ = writeln!(
                out,
                "<p>{}</p>",
                escape(&NOT_YET.replace("NAME", &probe.name))
            );
        }
    }
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_covers_text_and_attributes() {
        assert_eq!(
            escape(r#"<script>alert("x")</script> & 'y'"#),
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &apos;y&apos;"
        );
    }

    #[test]
    fn accept_decides_the_form() {
        assert!(Wants::of("application/json") == Wants::Json);
        assert!(Wants::of("text/html,application/xhtml+xml,*/*;q=0.8") == Wants::Html);
        assert!(Wants::of("*/*") == Wants::Text);
        assert!(Wants::of("") == Wants::Text);
    }

    #[test]
    fn refresh_is_bounded() {
        assert_eq!(refresh_of(Some("refresh=5")), Some(5));
        assert_eq!(refresh_of(Some("a=1&refresh=30")), Some(30));
        assert_eq!(refresh_of(Some("refresh=0")), None);
        assert_eq!(refresh_of(Some("refresh=99999")), None);
        assert_eq!(refresh_of(Some("refresh=x")), None);
        assert_eq!(refresh_of(None), None);
    }

    #[test]
    fn reason_drops_the_verdict_word() {
        assert_eq!(
            reason("unhealthy: GET x -> 503 in 2 ms"),
            "GET x -> 503 in 2 ms"
        );
        assert_eq!(reason("no colon"), "no colon");
    }
}

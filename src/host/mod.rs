//! The functions a probe script can call, one namespace per file, and the one wrapper they all
//! run through (`Host::call`): it clamps the call's timeout to the deadline, records the call in
//! the trace, and turns a failure into the right kind of Rhai error:
//!
//! - a transport failure (refused, DNS, TLS, timeout) is a catchable `ErrorRuntime` → exit 2;
//! - a bad argument is the script's fault: an uncatchable `ErrorSystem` carrying a [`Fault`] → exit 3;
//! - running out of time is `ErrorTerminated`, uncatchable like the `on_progress` stop → exit 4.

pub mod checks;
pub mod container;
pub mod files;
pub mod http;
pub mod inputs;
pub mod options;
pub mod process;
pub mod redis;
pub mod sql;
pub mod system;
pub mod tcp;
pub mod tls;

use std::{
    cell::{Cell, OnceCell},
    fmt,
    rc::Rc,
    time::Instant,
};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};

use crate::{
    deadline::Deadline,
    trace::{Outcome, Pos, Trace},
};

pub type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// What every host function shares for one probe run; `serve` reuses it (and the engine built
/// on it) for every evaluation of a probe, starting each with [`Host::restart`].
pub struct Host {
    deadline: Cell<Deadline>,
    /// Bytes of `print`/`debug` output logged in this evaluation (see `engine::limits`).
    pub printed: Cell<usize>,
    pub trace: Trace,
    /// The script's display name, for log records.
    pub source: String,
    /// `--var` values, for `var_or`.
    pub vars: rhai::Map,
    /// Built on the first `http_get`, so probes that make no HTTP call never pay for it.
    http_agent: OnceCell<ureq::Agent>,
    /// `rhai-probe test`: the case whose stubs replace every function that reads the world.
    pub stubs: Option<Rc<crate::testing::Stubs>>,
}

impl Host {
    pub fn new(deadline: Deadline, trace: Trace, source: String, vars: rhai::Map) -> Rc<Self> {
        Rc::new(Host {
            deadline: Cell::new(deadline),
            printed: Cell::new(0),
            trace,
            source,
            vars,
            http_agent: OnceCell::new(),
            stubs: None,
        })
    }

    /// The current evaluation's deadline.
    pub fn deadline(&self) -> Deadline {
        self.deadline.get()
    }

    /// Start another evaluation with the same engine: a new deadline, a fresh print budget and
    /// an empty trace. Returns the previous evaluation's trace.
    pub fn restart(&self, deadline: Deadline) -> crate::trace::Inner {
        self.deadline.set(deadline);
        self.printed.set(0);
        self.trace.take()
    }

    /// Run one host call under the deadline and record it in the trace.
    ///
    /// `f` gets the time it may take (its own timeout clamped to the time left) and returns the
    /// value with the outcome to record, or a [`HostError`].
    pub fn call<T>(
        &self,
        ctx: &NativeCallContext,
        function: &'static str,
        what: String,
        own_timeout: Option<std::time::Duration>,
        f: impl FnOnce(std::time::Duration) -> Result<(T, Outcome), HostError>,
    ) -> RhaiResult<T> {
        let position = ctx.call_position();
        let Some(budget) = self.deadline().clamp(own_timeout) else {
            return Err(deadline_error(format!("before {what}"), position));
        };
        let index = self.trace.begin(function, what.clone(), position.into());
        let started = Instant::now();
        let result = f(budget);
        let elapsed = started.elapsed();
        // A call that did not succeed once the deadline has passed was cut short by it: say so,
        // rather than blaming the peer for a timeout the deadline imposed.
        let cut_short = self.deadline().expired()
            && !matches!(result, Ok((_, Outcome::Pass(_))) | Err(HostError::Fault(_)));
        if cut_short {
            self.trace.finish(
                index,
                Outcome::Error("deadline passed".into()),
                elapsed,
                &self.source,
            );
            return Err(deadline_error(format!("during {what}"), position));
        }
        match result {
            Ok((value, outcome)) => {
                self.trace.finish(index, outcome, elapsed, &self.source);
                Ok(value)
            }
            Err(HostError::Transport(message)) => {
                self.trace.finish(
                    index,
                    Outcome::Error(message.clone()),
                    elapsed,
                    &self.source,
                );
                Err(
                    EvalAltResult::ErrorRuntime(format!("{what}: {message}").into(), position)
                        .into(),
                )
            }
            Err(HostError::Fault(message)) => {
                self.trace.finish(
                    index,
                    Outcome::Error(message.clone()),
                    elapsed,
                    &self.source,
                );
                Err(fault(format!("{function}: {message}"), position))
            }
        }
    }

    pub fn http_agent(&self) -> &ureq::Agent {
        self.http_agent.get_or_init(http::build_agent)
    }
}

/// Why a host call failed.
#[derive(Debug)]
pub enum HostError {
    /// The peer or the network failed: the thing being checked is not well.
    Transport(String),
    /// The script asked for something impossible (no scheme, port 70000, unknown option).
    Fault(String),
}

impl HostError {
    /// For errors found before the call starts (a bad option): always the script's fault.
    pub fn into_fault(self, function: &str, ctx: &NativeCallContext) -> Box<EvalAltResult> {
        match self {
            HostError::Fault(m) | HostError::Transport(m) => {
                fault(format!("{function}: {m}"), ctx.call_position())
            }
        }
    }
}

/// A script fault raised by a host function. Carried inside `ErrorSystem`, which Rhai neither
/// lets `try`/`catch` swallow nor wraps in `ErrorInFunctionCall`; it has no position field, so the
/// position travels here.
#[derive(Debug)]
pub struct Fault {
    pub message: String,
    pub position: Position,
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Fault {}

pub fn fault(message: String, position: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorSystem(String::new(), Box::new(Fault { message, position })).into()
}

/// The deadline stop: the same error `on_progress` raises, so both end in exit 4.
pub fn deadline_error(during: String, position: Position) -> Box<EvalAltResult> {
    EvalAltResult::ErrorTerminated(Dynamic::from(during), position).into()
}

/// The parameters of a documented signature: `http_get(url: string, options: map) -> map` →
/// `["url: string", "options: map"]`. The lint, the test stubs and the reference test all
/// count arguments through this one reading of `FnDoc::signatures`.
pub fn params(signature: &str) -> Vec<&str> {
    signature
        .split_once('(')
        .and_then(|(_, rest)| rest.split_once(')'))
        .map_or("", |(inside, _)| inside)
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// One line of the function reference: used by error hints ("http_get takes …").
pub struct FnDoc {
    pub name: &'static str,
    pub signatures: &'static [&'static str],
    pub summary: &'static str,
}

/// Every host function, for hints in diagnostics. Keep in step with each `register`; a test in
/// `engine.rs` checks that every name here is callable.
pub const FUNCTIONS: &[FnDoc] = &[
    system::DOC_LOAD_AVG,
    system::DOC_CPU_COUNT,
    container::DOC_MEMORY,
    container::DOC_CPU,
    container::DOC_CPU_USAGE_PCT,
    files::DOC_DISK_USAGE,
    files::DOC_FILE_EXISTS,
    files::DOC_FILE_AGE,
    process::DOC_PROCESS_RUNNING,
    process::DOC_PROCESS_COUNT,
    http::DOC_HTTP_GET,
    http::DOC_JSON,
    tcp::DOC_TCP_OPEN,
    tcp::DOC_DNS_RESOLVE,
    sql::DOC_SQL_PING,
    sql::DOC_SQL_SCALAR,
    redis::DOC_REDIS_PING,
    inputs::DOC_ENV,
    inputs::DOC_READ_FILE,
    checks::DOC_CHECK,
    checks::DOC_VAR_OR,
    checks::DOC_SLEEP,
];

/// The function reference as `rhai-probe functions` prints it.
pub fn reference(format: crate::cli::ListFormat) -> String {
    use crate::cli::ListFormat;
    let mut out = String::new();
    match format {
        ListFormat::Text => {
            for doc in FUNCTIONS {
                for signature in doc.signatures {
                    out.push_str(signature);
                    out.push('\n');
                }
                out.push_str("    ");
                out.push_str(doc.summary);
                out.push_str("\n\n");
            }
            out.push_str("Details and examples: docs/functions.md\n");
        }
        ListFormat::Json => {
            let list: Vec<serde_json::Value> = FUNCTIONS
                .iter()
                .map(|doc| {
                    serde_json::json!({
                        "name": doc.name,
                        "signatures": doc.signatures,
                        "summary": doc.summary,
                    })
                })
                .collect();
            out = serde_json::to_string_pretty(&list).unwrap_or_default();
            out.push('\n');
        }
        ListFormat::Markdown => {
            out.push_str("| function | signatures | what it does |\n|---|---|---|\n");
            for doc in FUNCTIONS {
                let signatures: Vec<String> = doc
                    .signatures
                    .iter()
                    .map(|s| format!("`{}`", s.replace('|', "\\|")))
                    .collect();
                out.push_str(&format!(
                    "| [{name}](#{name}) | {} | {} |\n",
                    signatures.join("<br>"),
                    doc.summary.replace('|', "\\|"),
                    name = doc.name,
                ));
            }
        }
    }
    out
}

pub fn register(engine: &mut Engine, host: &Rc<Host>) {
    checks::register(engine, host);
    if let Some(stubs) = &host.stubs {
        http::register_pure(engine);
        crate::testing::register_stubs(engine, host, stubs);
        return;
    }
    system::register(engine, host);
    container::register(engine, host);
    files::register(engine, host);
    process::register(engine, host);
    redis::register(engine, host);
    http::register(engine, host);
    tcp::register(engine, host);
    sql::register(engine, host);
    inputs::register(engine, host);
}

/// A short reason for a failed I/O operation (connect, read, open): `connection refused`, not
/// `Connection refused (os error 111)`.
pub fn io_reason(e: &std::io::Error) -> String {
    use std::io::ErrorKind::*;
    match e.kind() {
        ConnectionRefused => "connection refused".into(),
        ConnectionReset => "connection reset".into(),
        TimedOut => "timed out".into(),
        _ => {
            let text = e.to_string();
            match text.find(" (os error") {
                Some(i) => text[..i].to_lowercase(),
                None => text,
            }
        }
    }
}

pub fn pos(ctx: &NativeCallContext) -> Pos {
    ctx.call_position().into()
}

#[cfg(test)]
mod tests {
    use super::FUNCTIONS;

    #[test]
    fn the_table_in_the_reference_is_what_functions_prints() {
        let reference = include_str!("../../docs/functions.md");
        let table = super::reference(crate::cli::ListFormat::Markdown);
        assert!(
            reference.contains(&format!("-->\n{table}<!-- end of generated table -->")),
            "docs/functions.md's table differs; paste the output of \
             `rhai-probe functions --format markdown`:\n{table}"
        );
    }

    #[test]
    fn every_function_is_in_the_reference() {
        let reference = include_str!("../../docs/functions.md");
        for doc in FUNCTIONS {
            assert!(
                reference.contains(&format!("## {}\n", doc.name)),
                "docs/functions.md has no section for {}",
                doc.name
            );
            for signature in doc.signatures {
                let plain = signature.split(" -> ").next().unwrap();
                assert!(reference.contains(plain), "docs/functions.md lacks {plain}");
            }
        }
    }
}

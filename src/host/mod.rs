//! The functions a probe script can call, one namespace per file, and the one wrapper they all
//! run through (`Host::call`): it clamps the call's timeout to the deadline, records the call in
//! the trace, and turns a failure into the right kind of Rhai error:
//!
//! - a transport failure (refused, DNS, TLS, timeout) is a catchable `ErrorRuntime` → exit 2;
//! - a bad argument is the script's fault: an uncatchable `ErrorSystem` carrying a [`Fault`] → exit 3;
//! - running out of time is `ErrorTerminated`, uncatchable like the `on_progress` stop → exit 4.

/// The files that declare host functions, in the order `functions` and the docs list them.
/// Each has `pub const FUNCTIONS: &[HostFn]`; a new one is one name here.
macro_rules! host_modules {
    ($($module:ident),* $(,)?) => {
        $(pub mod $module;)*
        const MODULES: &[&[HostFn]] = &[$($module::FUNCTIONS),*];
    };
}

host_modules!(
    system, container, files, process, http, tcp, certs, grpc, sql, redis, broker, inputs, checks,
    state
);

pub mod decl;
pub mod local;
pub mod options;
pub mod tls;
pub mod values;
pub mod wire;

use std::{
    cell::{Cell, OnceCell, RefCell},
    fmt,
    rc::Rc,
    time::Instant,
};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext, Position};

pub use decl::HostFn;
use decl::{Mask, Time};

use crate::{
    deadline::Deadline,
    redact,
    trace::{Outcome, Pos, Trace},
};

/// Every host function, in the order of [`MODULES`].
pub fn functions() -> impl Iterator<Item = &'static HostFn> {
    MODULES.iter().flat_map(|m| m.iter())
}

/// The declaration of the function named `name`.
pub fn find(name: &str) -> Option<&'static HostFn> {
    functions().find(|f| f.name == name)
}

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
    http_agent: OnceCell<http::Client>,
    /// `rhai-probe test`: the case whose stubs replace every function that reads the world.
    pub stubs: Option<Rc<crate::testing::Stubs>>,
    /// Where the JSON values of this evaluation came from (see `values`).
    pub json: RefCell<values::Sources>,
    /// `serve`: calls of [`Time::Local`] run on a helper thread the deadline can abandon.
    pub local: Option<local::Helper>,
    /// What this probe keeps between runs (`crate::state`); off unless a place is given.
    pub state: RefCell<crate::state::Session>,
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
            json: RefCell::default(),
            local: None,
            state: RefCell::default(),
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
        self.json.borrow_mut().clear();
        self.trace.take()
    }

    /// Run one host call under the deadline and record it in the trace.
    ///
    /// `secrets` are the values of the arguments `f` declares secret, in its order: they are
    /// masked (and so remembered by `redact`) before `what` is recorded, so no credential
    /// reaches the trace whatever `what` says. `body` gets the time it may take (its own timeout
    /// clamped to the time left) and returns the value with the outcome to record, or a
    /// [`HostError`].
    pub fn call<T>(
        &self,
        ctx: &NativeCallContext,
        f: &'static HostFn,
        secrets: &[&str],
        what: String,
        own_timeout: Option<std::time::Duration>,
        body: impl FnOnce(std::time::Duration) -> Result<(T, Outcome), HostError>,
    ) -> RhaiResult<T> {
        debug_assert!(f.time != Time::Local, "{}: use Host::local", f.name);
        let what = mask(f, secrets, what);
        let position = ctx.call_position();
        let Some(budget) = self.deadline().clamp(own_timeout) else {
            return Err(deadline_error(format!("before {what}"), position));
        };
        let index = self.trace.begin(f.name, what.clone(), position.into());
        let started = Instant::now();
        let result = body(budget);
        self.finish(f, index, &what, position, started, result)
    }

    /// A [`Time::Local`] call: as [`Host::call`], but `body` may block in the kernel (a hung
    /// mount) without a timeout of its own. Under `serve` it runs on the helper thread and is
    /// abandoned when the deadline passes; elsewhere it runs here, under `run`'s watchdog.
    pub fn local<T: Send + 'static>(
        &self,
        ctx: &NativeCallContext,
        f: &'static HostFn,
        what: String,
        body: impl FnOnce() -> Result<(T, Outcome), HostError> + Send + 'static,
    ) -> RhaiResult<T> {
        debug_assert!(f.time == Time::Local, "{}: use Host::call", f.name);
        let what = mask(f, &[], what);
        let position = ctx.call_position();
        let Some(budget) = self.deadline().clamp(None) else {
            return Err(deadline_error(format!("before {what}"), position));
        };
        let index = self.trace.begin(f.name, what.clone(), position.into());
        let started = Instant::now();
        let result = match &self.local {
            Some(helper) => match helper.run(budget, body) {
                Ok(result) => result,
                // It did not answer before the deadline and is left behind.
                Err(None) => Err(HostError::Transport(DEADLINE_PASSED.into())),
                Err(Some(reason)) => Err(HostError::Transport(reason)),
            },
            None => body(),
        };
        self.finish(f, index, &what, position, started, result)
    }

    fn finish<T>(
        &self,
        f: &'static HostFn,
        index: usize,
        what: &str,
        position: Position,
        started: Instant,
        result: Result<(T, Outcome), HostError>,
    ) -> RhaiResult<T> {
        let elapsed = started.elapsed();
        // A check deep in the call (a lookup, a redirect, a driver's target) denied it: whatever
        // the code between made of that error, it is the script's fault.
        let result = match (crate::permissions::take_denied(), result) {
            (Some(message), _) => Err(HostError::Denied(message)),
            (None, result) => result,
        };
        // A call that did not succeed once the deadline has passed was cut short by it: say so,
        // rather than blaming the peer for a timeout the deadline imposed.
        let cut_short = self.deadline().expired()
            && !matches!(
                result,
                Ok((_, Outcome::Pass(_))) | Err(HostError::Fault(_) | HostError::Denied(_))
            );
        if cut_short {
            self.trace.finish(
                index,
                Outcome::Error(DEADLINE_PASSED.into()),
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
                Err(fault(format!("{}: {message}", f.name), position))
            }
            Err(HostError::Denied(message)) => {
                let message = format!("{} {message}", f.name);
                self.trace.finish(
                    index,
                    Outcome::Error(message.clone()),
                    elapsed,
                    &self.source,
                );
                Err(fault(message, position))
            }
        }
    }

    pub fn http_agent(&self) -> &http::Client {
        self.http_agent.get_or_init(http::build_agent)
    }
}

/// How the trace shows a call the deadline stopped.
pub const DEADLINE_PASSED: &str = "deadline passed";

/// `what` with the declared secrets of `f` masked: each is masked as its kind says (which
/// remembers it), then anything remembered is scrubbed from `what`.
fn mask(f: &HostFn, secrets: &[&str], what: String) -> String {
    debug_assert_eq!(
        secrets.len(),
        f.secrets.len(),
        "{}: pass the value of every declared secret",
        f.name
    );
    for (value, secret) in secrets.iter().zip(f.secrets) {
        match secret.mask {
            Mask::Url => drop(redact::mask_url(value)),
            Mask::Dsn => drop(sql::dsn::mask(value)),
        }
    }
    redact::scrub(&what).into_owned()
}

/// Why a host call failed.
#[derive(Debug)]
pub enum HostError {
    /// The peer or the network failed: the thing being checked is not well.
    Transport(String),
    /// The script asked for something impossible (no scheme, port 70000, unknown option).
    Fault(String),
    /// The command line's allowlists do not allow the target (`crate::permissions`): a script
    /// fault, shown as `NAME to TARGET is not allowed by --allow-…`.
    Denied(String),
}

impl HostError {
    /// For errors found before the call starts (a bad option): always the script's fault.
    pub fn into_fault(self, function: &str, ctx: &NativeCallContext) -> Box<EvalAltResult> {
        match self {
            HostError::Fault(m) | HostError::Transport(m) => {
                fault(format!("{function}: {m}"), ctx.call_position())
            }
            HostError::Denied(m) => fault(format!("{function} {m}"), ctx.call_position()),
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

/// A map result of `f`, tagged so that a missing key reads as a typo on a known shape
/// (`values::missing_key`) rather than as data.
pub fn result_map(f: &'static HostFn, map: rhai::Map) -> Dynamic {
    values::tagged_result(f, map)
}

/// The function reference as `rhai-probe functions` prints it.
pub fn reference(format: crate::cli::ListFormat) -> String {
    use crate::cli::ListFormat;
    let mut out = String::new();
    match format {
        ListFormat::Text => {
            for f in functions() {
                for signature in f.signatures {
                    out.push_str(signature);
                    out.push('\n');
                }
                out.push_str("    ");
                out.push_str(f.summary);
                out.push('\n');
                if !f.options.is_empty() {
                    out.push_str("    options: ");
                    out.push_str(&f.option_keys().join(", "));
                    out.push('\n');
                }
                out.push('\n');
            }
            out.push_str("Details and examples: docs/functions.md\n");
        }
        ListFormat::Stubs => out = crate::testing::stub_table(),
        ListFormat::Json => {
            let list: Vec<serde_json::Value> = functions().map(describe).collect();
            out = serde_json::to_string_pretty(&list).unwrap_or_default();
            out.push('\n');
        }
        ListFormat::Markdown => {
            out.push_str("| function | signatures | what it does | fails |\n|---|---|---|---|\n");
            for f in functions() {
                let signatures: Vec<String> = f
                    .signatures
                    .iter()
                    .map(|s| format!("`{}`", s.replace('|', "\\|")))
                    .collect();
                out.push_str(&format!(
                    "| [{name}](#{name}) | {} | {} | {} |\n",
                    signatures.join("<br>"),
                    f.summary.replace('|', "\\|"),
                    f.fails.describe(),
                    name = f.name,
                ));
            }
        }
    }
    out
}

/// The tables of a function's section in docs/functions.md, between these markers: the keys of
/// its map result and its options, from its declaration.
pub fn doc_tables(f: &HostFn) -> Option<String> {
    if f.keys.is_empty() && f.options.is_empty() {
        return None;
    }
    let cell = |text: &str| text.replace('|', "\\|");
    let mut out = format!(
        "<!-- generated from the declaration of {}; a test keeps it in step -->\n",
        f.name
    );
    if !f.keys.is_empty() {
        out.push_str("| key | type | meaning |\n|---|---|---|\n");
        for k in f.keys {
            out.push_str(&format!(
                "| `{}` | {} | {} |\n",
                k.name,
                k.ty.word(),
                cell(k.doc)
            ));
        }
    }
    if !f.options.is_empty() {
        if !f.keys.is_empty() {
            out.push('\n');
        }
        out.push_str("| option | type | default | meaning |\n|---|---|---|---|\n");
        for o in f.options {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} |\n",
                o.key,
                cell(o.ty.described()),
                if o.default.is_empty() { "" } else { o.default },
                cell(o.doc)
            ));
        }
    }
    out.push_str(&format!("<!-- end of {} -->\n", f.name));
    Some(out)
}

/// One function as `functions --format json` shows it: everything its declaration says.
fn describe(f: &'static HostFn) -> serde_json::Value {
    use decl::Stub;
    serde_json::json!({
        "name": f.name,
        "signatures": f.signatures,
        "summary": f.summary,
        "options": f.options.iter().map(|o| serde_json::json!({
            "key": o.key,
            "type": o.ty.described(),
            "default": o.default,
            "doc": o.doc,
        })).collect::<Vec<_>>(),
        "keys": f.keys.iter().map(|k| serde_json::json!({
            "key": k.name,
            "type": k.ty.word(),
            "doc": k.doc,
            "stub_default": k.stub.describe(),
        })).collect::<Vec<_>>(),
        "fails": format!("{:?}", f.fails).to_lowercase(),
        "time": format!("{:?}", f.time).to_lowercase(),
        "secret_args": f.secrets.iter().map(|s| s.arg).collect::<Vec<_>>(),
        "stub": match f.stub {
            Stub::Real => serde_json::json!("real"),
            Stub::Instant => serde_json::json!("instant"),
            Stub::Answer { example, failing } => serde_json::json!({"example": example, "failing": failing}),
        },
    })
}

/// The functions `wanted` picks into the engine: the real ones, or under `rhai-probe test` the
/// case's stubs for those that read the world.
pub fn register(engine: &mut Engine, host: &Rc<Host>, wanted: &dyn Fn(&HostFn) -> bool) {
    values::install(engine, host);
    for f in functions().filter(|f| wanted(f)) {
        match (&host.stubs, &f.stub) {
            (Some(stubs), decl::Stub::Answer { .. }) => {
                crate::testing::register_stub(engine, host, stubs, f)
            }
            (Some(_), decl::Stub::Instant) => crate::testing::register_instant(engine, f),
            _ => (f.register)(engine, host),
        }
    }
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
mod tests;

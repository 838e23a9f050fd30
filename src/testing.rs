//! `rhai-probe test`: run a probe script once per case of a `.cases.toml` file, with every host
//! function that touches the world replaced by the case's stubs — no network, no clock — and
//! compare the verdict with the one the case expects.
//!
//! The stubs go in through the one engine factory: `host::register` installs them instead of the
//! real functions when the `Host` carries a case. Everything else (the sandbox, the deadline,
//! `check`, the verdict) is the code `run` uses.

use std::{any::TypeId, cell::RefCell, path::Path, rc::Rc};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use serde::Deserialize;

use crate::{
    exit_code::Exit,
    host::{self, deadline_error, fault, Host, RhaiResult},
    redact,
    trace::Outcome,
};

/// The functions a case must stub: every one that reads the world.
pub const STUBBED: &[&str] = &[
    "load_avg",
    "cpu_count",
    "memory",
    "cpu",
    "cpu_usage_pct",
    "disk_usage",
    "file_exists",
    "file_age",
    "process_running",
    "process_count",
    "http_get",
    "tcp_open",
    "dns_resolve",
    "sql_ping",
    "sql_scalar",
    "redis_ping",
    "env",
    "read_file",
];

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CasesFile {
    #[serde(rename = "case", default)]
    pub cases: Vec<Case>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct Case {
    pub name: String,
    /// healthy, unhealthy, check-error, script-fault or deadline.
    pub expect: String,
    /// Text the verdict line must contain.
    #[serde(default)]
    pub reason: Option<String>,
    /// `--var` values for this case.
    #[serde(default)]
    pub vars: toml::Table,
    /// Function name → the value every call of it returns.
    #[serde(default)]
    pub stubs: toml::Table,
    /// Per-argument answers, tried in order before `stubs`.
    #[serde(default)]
    pub calls: Vec<CallStub>,
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CallStub {
    #[serde(rename = "fn")]
    pub function: String,
    /// The first arguments this answer is for; absent: any arguments.
    #[serde(default)]
    pub args: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub returns: Option<toml::Value>,
    /// The call fails as a transport error would (exit 2 unless caught).
    #[serde(default)]
    pub raises: Option<String>,
    /// The call never answers: the probe ends at its deadline (exit 4).
    #[serde(default)]
    pub hangs: bool,
}

/// A case's stubs while it runs, and the first call it had no answer for.
pub struct Stubs {
    case: Case,
    pub missing: RefCell<Option<String>>,
}

impl Stubs {
    pub fn new(case: Case) -> Rc<Self> {
        Rc::new(Stubs {
            case,
            missing: RefCell::new(None),
        })
    }

    pub fn case(&self) -> &Case {
        &self.case
    }
}

/// `liveness.rhai` → `liveness.cases.toml`, beside it.
pub fn default_cases_path(script: &Path) -> std::path::PathBuf {
    script.with_extension("cases.toml")
}

/// Read and check a cases file; errors say where (`path: line L, column C`) and what.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let shown = path.display();
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the cases file {shown}: {}; write one beside the script (see docs/testing.md)",
            host::io_reason(&e)
        )
    })?;
    parse_cases(&text, &shown.to_string())
}

/// Check a cases file's text; `shown` names it in errors.
pub fn parse_cases(text: &str, shown: &str) -> Result<Vec<Case>, String> {
    let file: CasesFile = toml::from_str(text).map_err(|e| {
        let place = e
            .span()
            .map(|span| {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
                format!(":{line}:{col}")
            })
            .unwrap_or_default();
        format!("{shown}{place}: {}", e.message())
    })?;
    if file.cases.is_empty() {
        return Err(format!("{shown}: no [[case]] in it"));
    }
    for case in &file.cases {
        if Exit::from_key(&case.expect).is_none() {
            return Err(format!(
                "{shown}: case {:?}: expect = {:?} is not a verdict; use healthy, unhealthy, check-error, script-fault or deadline",
                case.name, case.expect
            ));
        }
        for name in case
            .stubs
            .keys()
            .chain(case.calls.iter().map(|c| &c.function))
        {
            if !STUBBED.contains(&name.as_str()) {
                let hint = match crate::diagnostic::closest(name, STUBBED.iter().copied()) {
                    Some(near) => format!("did you mean {near}? "),
                    None => String::new(),
                };
                return Err(format!(
                    "{shown}: case {:?}: {name} is not a function that can be stubbed; {hint}those are {}",
                    case.name,
                    STUBBED.join(", ")
                ));
            }
        }
        for call in &case.calls {
            let answers =
                call.returns.is_some() as u8 + call.raises.is_some() as u8 + call.hangs as u8;
            if answers != 1 {
                return Err(format!(
                    "{shown}: case {:?}: a [[case.calls]] for {} needs exactly one of returns, raises or hangs",
                    case.name, call.function
                ));
            }
        }
    }
    Ok(file.cases)
}

/// The `--var`s of a case, typed as TOML types them.
pub fn case_vars(case: &Case) -> rhai::Map {
    case.vars
        .iter()
        .map(|(k, v)| (k.as_str().into(), to_dynamic(v)))
        .collect()
}

fn to_dynamic(value: &toml::Value) -> Dynamic {
    rhai::serde::to_dynamic(value).unwrap_or_else(|_| Dynamic::from(format!("{value:?}")))
}

/// Whether a call's arguments start with `want` (compared as JSON values: 8080 == 8080.0).
fn args_match(want: &[toml::Value], got: &[Dynamic]) -> bool {
    want.len() <= got.len()
        && want.iter().zip(got).all(|(w, g)| {
            let w = serde_json::to_value(w).ok();
            let g = rhai::serde::from_dynamic::<serde_json::Value>(g).ok();
            match (w, g) {
                (Some(serde_json::Value::Number(a)), Some(serde_json::Value::Number(b))) => {
                    a.as_f64() == b.as_f64()
                }
                (a, b) => a.is_some() && a == b,
            }
        })
}

/// `http_get("http://…")`, with strings quoted and URLs masked.
fn describe_call(name: &str, args: &[Dynamic]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.is_string() {
                format!("{:?}", redact::mask_url(&a.to_string()))
            } else {
                a.to_string()
            }
        })
        .collect();
    format!("{name}({})", shown.join(", "))
}

/// An `http_get` answer completed to the shape the real one has, so that `.ok`, `.body` and
/// `.json()` work on `#{status: 503}`.
fn complete_response(value: Dynamic, url: &Dynamic) -> Dynamic {
    let Some(mut map) = value.try_cast::<rhai::Map>() else {
        return Dynamic::UNIT;
    };
    let status = map
        .get("status")
        .and_then(|s| s.as_int().ok())
        .unwrap_or(200);
    map.entry("status".into()).or_insert(Dynamic::from(status));
    map.entry("ok".into())
        .or_insert(Dynamic::from((200..400).contains(&status)));
    map.entry("body".into()).or_insert(Dynamic::from(""));
    map.entry("headers".into())
        .or_insert(Dynamic::from(rhai::Map::new()));
    map.entry("elapsed_ms".into())
        .or_insert(Dynamic::from_float(0.0));
    map.entry("truncated".into()).or_insert(Dynamic::FALSE);
    map.entry("url".into()).or_insert(url.clone());
    Dynamic::from(map)
}

/// The keys of the maps `memory()`, `cpu()` and `disk_usage()` return: a stub gives the ones a
/// script reads, the others are `()` (TOML has no null), as on a machine without that figure.
fn complete_map(name: &str, value: Dynamic) -> Dynamic {
    let keys: &[&str] = match name {
        "memory" => &[
            "limit",
            "used",
            "working_set",
            "used_pct",
            "total",
            "available",
            "pressure_avg10",
            "cgroup",
        ],
        "cpu" => &[
            "quota_cpus",
            "usage_usec",
            "nr_throttled",
            "throttled_usec",
            "pressure_avg10",
            "cgroup",
        ],
        "disk_usage" => &["total", "free", "available", "used_pct", "inodes_free"],
        _ => return value,
    };
    match value.try_cast::<rhai::Map>() {
        Some(mut map) => {
            for key in keys {
                map.entry((*key).into()).or_insert(Dynamic::UNIT);
            }
            Dynamic::from(map)
        }
        None => Dynamic::UNIT,
    }
}

/// One stubbed call: find its answer, record it in the trace, return it.
fn answer(
    host: &Host,
    stubs: &Stubs,
    ctx: &NativeCallContext,
    name: &'static str,
    args: &[Dynamic],
) -> RhaiResult<Dynamic> {
    let position = ctx.call_position();
    let what = describe_call(name, args);
    let index = host.trace.begin(name, what.clone(), position.into());
    let finish = |outcome: Outcome| {
        host.trace
            .finish(index, outcome, std::time::Duration::ZERO, &host.source)
    };
    let stub = stubs.case.calls.iter().find(|c| {
        c.function == name && c.args.as_deref().is_none_or(|want| args_match(want, args))
    });
    let value = match stub {
        Some(c) if c.hangs => {
            finish(Outcome::Error("deadline passed".into()));
            return Err(deadline_error(format!("during {what}"), position));
        }
        Some(CallStub {
            raises: Some(message),
            ..
        }) => {
            finish(Outcome::Error(message.clone()));
            return Err(
                EvalAltResult::ErrorRuntime(format!("{what}: {message}").into(), position).into(),
            );
        }
        Some(CallStub {
            returns: Some(v), ..
        }) => to_dynamic(v),
        _ => match stubs.case.stubs.get(name) {
            Some(v) => to_dynamic(v),
            None => {
                let first = args.first().map(|a| format!("{a:?}")).unwrap_or_default();
                let message = format!(
                    "no stub for {what} in case {:?}; add `stubs.{name} = VALUE` to the case, or \
                     [[case.calls]] with fn = \"{name}\", args = [{first}] and returns, raises or hangs",
                    stubs.case.name
                );
                stubs.missing.borrow_mut().get_or_insert(message.clone());
                finish(Outcome::Error("no stub".into()));
                return Err(fault(message, position));
            }
        },
    };
    let value = match name {
        "http_get" => complete_response(value, args.first().unwrap_or(&Dynamic::UNIT)),
        _ => complete_map(name, value),
    };
    let looks_failed = value.as_bool() == Ok(false)
        || (name == "http_get"
            && value
                .read_lock::<rhai::Map>()
                .and_then(|m| m.get("ok").and_then(|ok| ok.as_bool().ok()))
                == Some(false));
    let shown = if name == "http_get" {
        value
            .read_lock::<rhai::Map>()
            .and_then(|m| m.get("status").map(|s| s.to_string()))
            .unwrap_or_default()
    } else {
        value.to_string()
    };
    finish(if looks_failed {
        Outcome::Fail(shown)
    } else {
        Outcome::Pass(shown)
    });
    Ok(value)
}

/// Install stubs for every stubbed function, at every arity its signatures name; and a `sleep`
/// that returns at once.
pub fn register_stubs(engine: &mut Engine, host: &Rc<Host>, stubs: &Rc<Stubs>) {
    for doc in host::FUNCTIONS.iter().filter(|d| STUBBED.contains(&d.name)) {
        for signature in doc.signatures {
            let arity = host::params(signature).len();
            let (h, s, name) = (host.clone(), stubs.clone(), doc.name);
            engine.register_raw_fn(
                name,
                vec![TypeId::of::<Dynamic>(); arity],
                move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| {
                    let args: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
                    answer(&h, &s, &ctx, name, &args)
                },
            );
        }
    }
    engine.register_fn("sleep", |_: rhai::INT| ());
    engine.register_fn("sleep", |_: rhai::FLOAT| ());
}

/// What one case came to.
pub struct CaseResult {
    pub passed: bool,
    pub line: String,
}

/// Compare a case's verdict with what it expects.
pub fn judge_case(
    case: &Case,
    verdict_line: &str,
    exit: Exit,
    missing: Option<String>,
) -> CaseResult {
    if let Some(message) = missing {
        return CaseResult {
            passed: false,
            line: format!("FAIL  {}: {message}", case.name),
        };
    }
    let expected = Exit::from_key(&case.expect);
    let mut problems = Vec::new();
    if expected != Some(exit) {
        problems.push(format!("expected {}, got {}", case.expect, exit.key()));
    }
    if let Some(reason) = &case.reason {
        if !verdict_line.contains(reason.as_str()) {
            problems.push(format!("the verdict does not contain {reason:?}"));
        }
    }
    if problems.is_empty() {
        CaseResult {
            passed: true,
            line: format!("ok    {}", case.name),
        }
    } else {
        CaseResult {
            passed: false,
            line: format!(
                "FAIL  {}: {}: {verdict_line}",
                case.name,
                problems.join("; ")
            ),
        }
    }
}

/// A first cases file for a script that has none: one case per verdict to fill in, with a stub
/// line for every function the script calls that needs one.
pub fn starter(script: &Path, cases: &Path) -> String {
    let called: Vec<String> = crate::probe::check(script, &rhai::Map::new())
        .map(|(_, ast)| crate::lint::called_functions(&ast))
        .unwrap_or_default()
        .into_iter()
        .filter(|name| STUBBED.contains(&name.as_str()))
        .collect();
    let mut out = format!("a start for {}:\n\n", cases.display());
    for (name, expect) in [
        ("everything answers", "healthy"),
        ("something fails", "unhealthy"),
    ] {
        out.push_str(&format!(
            "[[case]]\nname = \"{name}\"\nexpect = \"{expect}\"\n"
        ));
        for f in &called {
            out.push_str(&format!(
                "stubs.{f} = VALUE  # what {f} returns in this case\n"
            ));
        }
        out.push('\n');
    }
    out
}

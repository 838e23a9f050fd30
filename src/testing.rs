//! `rhai-probe test`: run a probe script once per case of a `.cases.toml` file, with every host
//! function that touches the world replaced by the case's stubs — no network, no clock — and
//! compare the verdict with the one the case expects.
//!
//! The stubs go in through the one engine factory: `host::register` installs them instead of the
//! real functions when the `Host` carries a case. Which functions are stubbed, which keys a stub
//! may give, their types and their defaults all come from the functions' declarations
//! (`host::decl`): a cases file is checked against them as strictly as a script is linted.

use std::{any::TypeId, cell::RefCell, collections::BTreeMap, path::Path, rc::Rc};

use rhai::{Dynamic, Engine, EvalAltResult, NativeCallContext};
use serde::Deserialize;
use toml::Spanned;

use crate::{
    diagnostic::closest,
    exit_code::Exit,
    host::{
        self, deadline_error,
        decl::{Fails, KeyStub, Stub, Type},
        fault, Host, HostFn, RhaiResult,
    },
    redact,
    trace::Outcome,
};

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
    pub expect: Spanned<String>,
    /// Text the verdict line must contain.
    #[serde(default)]
    pub reason: Option<String>,
    /// `--var` values for this case.
    #[serde(default)]
    pub vars: toml::Table,
    /// Function name → the value every call of it returns.
    #[serde(default)]
    pub stubs: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    /// Per-argument answers, tried in order before `stubs`.
    #[serde(default)]
    pub calls: Vec<CallStub>,
    /// What earlier runs left (`[case.state]`); without it, the case is a probe's first run.
    #[serde(default)]
    pub state: Option<Spanned<toml::Table>>,
}

/// A case's state as the run reads it (at `state::CASE_CLOCK`), or what is wrong with it. The
/// table (`[case.state]`) gives times as ages ("2m50s" ago): `checks.NAME.failing_since`,
/// `checks.NAME.failures`, `rates.NAME = { value, ago }`, `memory.NAME`, `history = [{ ago,
/// verdict, reason }]`. Read by hand rather than derived: serde's derive would build toml's
/// deserializer again for each of these shapes, 100 KB of the binary for a test-only table.
fn case_state(given: &toml::Table) -> Result<crate::state::State, String> {
    use crate::state::{period, CheckState, Entry, Sample, State, CASE_CLOCK, VERSION};
    use toml::Value;
    let at = |ago: &Value, what: &str| -> Result<f64, String> {
        let text = ago
            .as_str()
            .ok_or_else(|| format!("{what}: an age such as \"2m50s\", got {}", ago.type_str()))?;
        period(text)
            .map(|secs| CASE_CLOCK - secs)
            .map_err(|e| format!("{what}: {e}"))
    };
    let table = |v: &Value, what: &str| -> Result<toml::Table, String> {
        v.as_table()
            .cloned()
            .ok_or_else(|| format!("{what} must be a table, got {}", v.type_str()))
    };
    let only = |t: &toml::Table, what: &str, keys: &[&str]| -> Result<(), String> {
        match t.keys().find(|k| !keys.contains(&k.as_str())) {
            Some(k) => Err(format!(
                "{what}: unknown key '{k}'; known keys: {}",
                keys.join(", ")
            )),
            None => Ok(()),
        }
    };
    only(given, "state", &["checks", "rates", "memory", "history"])?;
    let wall_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut state = State {
        version: VERSION,
        identity: crate::state::identity(),
        ..State::default()
    };
    if let Some(checks) = given.get("checks") {
        for (name, c) in table(checks, "checks")? {
            let what = format!("checks.{name}");
            let c = table(&c, &what)?;
            only(&c, &what, &["failing_since", "failures"])?;
            let failing_since = c
                .get("failing_since")
                .map(|ago| at(ago, &format!("{what}.failing_since")))
                .transpose()?;
            let mut failures = match c.get("failures") {
                None => Vec::new(),
                Some(Value::Array(ages)) => ages
                    .iter()
                    .map(|ago| at(ago, &format!("{what}.failures")))
                    .collect::<Result<Vec<_>, _>>()?,
                Some(other) => {
                    return Err(format!(
                        "{what}.failures must be an array of ages, got {}",
                        other.type_str()
                    ))
                }
            };
            failures.sort_by(f64::total_cmp);
            state.checks.insert(
                name,
                CheckState {
                    failing_since,
                    failures,
                },
            );
        }
    }
    if let Some(rates) = given.get("rates") {
        for (name, r) in table(rates, "rates")? {
            let what = format!("rates.{name}");
            let r = table(&r, &what)?;
            only(&r, &what, &["value", "ago"])?;
            let value = match r.get("value") {
                Some(Value::Integer(i)) => *i as f64,
                Some(Value::Float(f)) => *f,
                Some(other) => {
                    return Err(format!(
                        "{what}.value must be a number, got {}",
                        other.type_str()
                    ))
                }
                None => return Err(format!("{what} needs value and ago")),
            };
            let ago = r
                .get("ago")
                .ok_or_else(|| format!("{what} needs value and ago"))?;
            let when = at(ago, &format!("{what}.ago"))?;
            state.rates.insert(name, Sample { value, at: when });
        }
    }
    if let Some(memory) = given.get("memory") {
        for (name, value) in table(memory, "memory")? {
            let json = serde_json::to_value(&value).map_err(|e| format!("memory.{name}: {e}"))?;
            state.memory.insert(name, json);
        }
    }
    match given.get("history") {
        None => {}
        Some(Value::Array(entries)) => {
            for (i, e) in entries.iter().enumerate() {
                let what = format!("history[{i}]");
                let e = table(e, &what)?;
                only(&e, &what, &["ago", "verdict", "reason"])?;
                let verdict = e.get("verdict").and_then(Value::as_str).unwrap_or_default();
                let exit = Exit::from_key(verdict).ok_or_else(|| {
                    format!(
                        "{what}.verdict = {verdict:?} is not a verdict; use healthy, unhealthy, check-error, script-fault or deadline"
                    )
                })?;
                let ago = e
                    .get("ago")
                    .ok_or_else(|| format!("{what} needs ago and verdict"))?;
                let when = at(ago, &format!("{what}.ago"))?;
                state.history.push_back(Entry {
                    at: when,
                    wall: wall_now.saturating_sub((CASE_CLOCK - when) as u64),
                    exit: exit.code(),
                    reason: e
                        .get("reason")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                });
            }
        }
        Some(other) => {
            return Err(format!(
                "history must be an array of tables, got {}",
                other.type_str()
            ))
        }
    }
    Ok(state)
}

/// Where a case's run keeps its state: the case's, at a fixed clock (checked when the file was
/// read).
pub fn case_store(case: &Case) -> crate::state::Store {
    let given = case
        .state
        .as_ref()
        .map(|s| case_state(s.get_ref()))
        .transpose()
        .ok()
        .flatten();
    crate::state::Store::Given(Box::new(given.unwrap_or_else(|| crate::state::State {
        version: crate::state::VERSION,
        identity: crate::state::identity(),
        ..Default::default()
    })))
}

#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
pub struct CallStub {
    #[serde(rename = "fn")]
    pub function: Spanned<String>,
    /// The first arguments this answer is for; absent: any arguments.
    #[serde(default)]
    pub args: Option<Vec<toml::Value>>,
    #[serde(default)]
    pub returns: Option<Spanned<toml::Value>>,
    /// The call fails as it would in production: a function that throws throws this message
    /// (exit 2 unless caught); one that answers false answers false with it as the reason.
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

/// Read and check a cases file; errors say where (`path:line:col`) and what.
pub fn load_cases(path: &Path) -> Result<Vec<Case>, String> {
    let shown = crate::probe::display_name(path);
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read the cases file {shown}: {}; write one with `rhai-probe test --init SCRIPT > {shown}` (see docs/testing.md)",
            host::io_reason(&e)
        )
    })?;
    parse_cases(&text, &shown)
}

/// `file:line:col` of a byte offset.
fn place(text: &str, shown: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.chars().rev().take_while(|c| *c != '\n').count() + 1;
    format!("{shown}:{line}:{col}")
}

/// Check a cases file's text against the functions' declarations; `shown` names it in errors.
pub fn parse_cases(text: &str, shown: &str) -> Result<Vec<Case>, String> {
    let file: CasesFile = toml::from_str(text).map_err(|e| {
        let at = e
            .span()
            .map_or(shown.to_string(), |s| place(text, shown, s.start));
        format!("{at}: {}", e.message().trim_end())
    })?;
    if file.cases.is_empty() {
        return Err(format!(
            "{shown}: no [[case]] in it; `rhai-probe test --init SCRIPT` writes a first one"
        ));
    }
    for case in &file.cases {
        let at = |offset: usize| place(text, shown, offset);
        if Exit::from_key(case.expect.get_ref()).is_none() {
            return Err(format!(
                "{}: case {:?}: expect = {:?} is not a verdict; use healthy, unhealthy, check-error, script-fault or deadline",
                at(case.expect.span().start),
                case.name,
                case.expect.get_ref()
            ));
        }
        if let Some(state) = &case.state {
            case_state(state.get_ref()).map_err(|m| {
                format!(
                    "{}: case {:?}: state: {m}",
                    at(state.span().start),
                    case.name
                )
            })?;
        }
        for (name, value) in &case.stubs {
            let f =
                stubbed(name.get_ref()).map_err(|m| format!("{}: {m}", at(name.span().start)))?;
            check_value(f, value, text).map_err(|(offset, m)| {
                format!(
                    "{}: case {:?}: stubs.{}: {m}",
                    at(offset),
                    case.name,
                    f.name
                )
            })?;
        }
        for call in &case.calls {
            let f = stubbed(call.function.get_ref())
                .map_err(|m| format!("{}: {m}", at(call.function.span().start)))?;
            let answers =
                call.returns.is_some() as u8 + call.raises.is_some() as u8 + call.hangs as u8;
            if answers != 1 {
                return Err(format!(
                    "{}: case {:?}: a [[case.calls]] for {} needs exactly one of returns, raises or hangs",
                    at(call.function.span().start),
                    case.name,
                    f.name
                ));
            }
            let most = f.arities().into_iter().max().unwrap_or(0);
            if call.args.as_ref().is_some_and(|a| a.len() > most) {
                return Err(format!(
                    "{}: case {:?}: {} takes at most {most} argument{}; args has more",
                    at(call.function.span().start),
                    case.name,
                    f.name,
                    if most == 1 { "" } else { "s" }
                ));
            }
            if let Some(value) = &call.returns {
                check_value(f, value, text).map_err(|(offset, m)| {
                    format!(
                        "{}: case {:?}: returns for {}: {m}",
                        at(offset),
                        case.name,
                        f.name
                    )
                })?;
            }
        }
    }
    Ok(file.cases)
}

/// The declaration of a function a case may stub.
fn stubbed(name: &str) -> Result<&'static HostFn, String> {
    let names: Vec<&str> = host::functions()
        .filter(|f| f.stubbed())
        .map(|f| f.name)
        .collect();
    match host::find(name) {
        Some(f) if f.stubbed() => Ok(f),
        Some(f) => Err(format!(
            "{} runs as in production under `rhai-probe test` and cannot be stubbed; the functions that read the world can: {}",
            f.name,
            names.join(", ")
        )),
        None => {
            let hint = match closest(name, names.iter().copied()) {
                Some(near) => format!("did you mean {near}? "),
                None => String::new(),
            };
            Err(format!(
                "{name} is not a function that can be stubbed; {hint}those are {}",
                names.join(", ")
            ))
        }
    }
}

/// A stub's value against what `f` returns: its type, and for a map result its keys and their
/// types. `Err((offset of the problem, message))`.
fn check_value(
    f: &HostFn,
    value: &Spanned<toml::Value>,
    text: &str,
) -> Result<(), (usize, String)> {
    let span = value.span();
    let returns = f.returns().unwrap_or(Type::Any);
    if !returns.accepts_stub(value.get_ref()) {
        return Err((
            span.start,
            format!(
                "{} returns {}, not {}; e.g. {}",
                f.name,
                returns.described(),
                Type::of_toml(value.get_ref()).described(),
                example(f)
            ),
        ));
    }
    let (toml::Value::Table(table), false) = (value.get_ref(), f.keys.is_empty()) else {
        return Ok(());
    };
    // Where a key of the table is written: searched in the table's own text.
    let key_at = |key: &str| {
        let inner = &text[span.clone()];
        inner
            .match_indices(key)
            .find(|(i, _)| {
                let before = inner[..*i].chars().next_back();
                let after = inner[i + key.len()..].chars().next();
                !before.is_some_and(|c| c.is_alphanumeric() || c == '_')
                    && !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
            })
            .map_or(span.start, |(i, _)| span.start + i)
    };
    for (key, item) in table {
        let Some(declared) = f.key(key) else {
            let names: Vec<&str> = f.keys.iter().map(|k| k.name).collect();
            let hint = match closest(key, names.iter().copied()) {
                Some(near) => format!("did you mean '{near}'? "),
                None => String::new(),
            };
            return Err((
                key_at(key),
                format!(
                    "{}'s result has no key '{key}'; {hint}its keys: {}",
                    f.name,
                    names.join(", ")
                ),
            ));
        };
        if !declared.ty.accepts_stub(item) {
            return Err((
                key_at(key),
                format!(
                    "'{key}' is {}, not {} (write {key} = {})",
                    declared.ty.described(),
                    Type::of_toml(item).described(),
                    sample(declared.ty)
                ),
            ));
        }
    }
    Ok(())
}

/// A value of `ty` as TOML, for error messages.
fn sample(ty: Type) -> &'static str {
    match ty {
        Type::Bool => "true",
        Type::Int => "200",
        Type::Float => "0.5",
        Type::String => "\"text\"",
        Type::Map => "{}",
        Type::Array => "[]",
        _ => "…",
    }
}

fn example(f: &HostFn) -> String {
    match f.stub {
        Stub::Answer { example, .. } => format!("stubs.{} = {example}", f.name),
        _ => String::new(),
    }
}

/// A TOML literal from a declaration, as a value.
fn literal(text: &str) -> Option<toml::Value> {
    toml::from_str::<toml::Table>(&format!("v = {text}"))
        .ok()?
        .remove("v")
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

/// `http_get("http://…")`, with the declared secrets masked as the real call masks them.
fn describe_call(f: &HostFn, args: &[Dynamic]) -> String {
    for secret in f.secrets {
        if let Some(value) = args.get(secret.arg).filter(|a| a.is_string()) {
            let value = value.to_string();
            match secret.mask {
                host::decl::Mask::Url => drop(redact::mask_url(&value)),
                host::decl::Mask::Dsn => drop(host::sql::dsn::mask(&value)),
            }
        }
    }
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
    redact::scrub(&format!("{}({})", f.name, shown.join(", "))).into_owned()
}

/// A map answer completed to the shape the real one has: every declared key the stub leaves
/// out gets its declared default, so `.ok`, `.body` and `.json()` work on `#{status: 503}`.
pub fn complete(f: &'static HostFn, value: Dynamic, args: &[Dynamic]) -> Dynamic {
    if f.keys.is_empty() {
        return value;
    }
    let Some(mut map) = value.try_cast::<rhai::Map>() else {
        return Dynamic::UNIT;
    };
    for key in f.keys {
        if map.contains_key(key.name) {
            continue;
        }
        let default = match &key.stub {
            KeyStub::Value(text) => literal(text).map_or(Dynamic::UNIT, |v| to_dynamic(&v)),
            KeyStub::Unit => Dynamic::UNIT,
            KeyStub::Derived(_, derive) => derive(&map, args),
        };
        map.insert(key.name.into(), default);
    }
    host::result_map(f, map)
}

/// One stubbed call: find its answer, record it in the trace, return it.
fn answer(
    host: &Host,
    stubs: &Stubs,
    ctx: &NativeCallContext,
    f: &'static HostFn,
    args: &[Dynamic],
) -> RhaiResult<Dynamic> {
    let position = ctx.call_position();
    let what = describe_call(f, args);
    let index = host.trace.begin(f.name, what.clone(), position.into());
    let finish = |outcome: Outcome| {
        host.trace
            .finish(index, outcome, std::time::Duration::ZERO, &host.source)
    };
    // The command line's allowlists hold here too: a case catches a script that needs a
    // permission the pod spec does not give (by the call's arguments; nothing is looked up).
    if let Some(granted) = crate::permissions::granted() {
        let given: Vec<Option<Dynamic>> = args.iter().cloned().map(Some).collect();
        for access in crate::permissions::accesses(f, &given).unwrap_or_default() {
            if let Err(message) = granted.check(&access) {
                crate::permissions::take_denied();
                finish(Outcome::Error(message.clone()));
                return Err(host::fault(format!("{} {message}", f.name), position));
            }
        }
    }
    let stub = stubs.case.calls.iter().find(|c| {
        c.function.get_ref() == f.name
            && c.args.as_deref().is_none_or(|want| args_match(want, args))
    });
    let value = match stub {
        Some(c) if c.hangs => {
            finish(Outcome::Error(host::DEADLINE_PASSED.into()));
            return Err(deadline_error(format!("during {what}"), position));
        }
        Some(CallStub {
            raises: Some(message),
            ..
        }) => {
            // As in production: a function that answers false for a failed peer does so here.
            if f.fails == Fails::False {
                finish(Outcome::Fail(message.clone()));
                return Ok(Dynamic::FALSE);
            }
            finish(Outcome::Error(message.clone()));
            return Err(
                EvalAltResult::ErrorRuntime(format!("{what}: {message}").into(), position).into(),
            );
        }
        Some(CallStub {
            returns: Some(v), ..
        }) => to_dynamic(v.get_ref()),
        _ => match stubs.case.stubs.iter().find(|(k, _)| k.get_ref() == f.name) {
            Some((_, v)) => to_dynamic(v.get_ref()),
            None => {
                let first = args.first().map(|a| format!("{a:?}")).unwrap_or_default();
                let example = match f.stub {
                    Stub::Answer { example, .. } => example,
                    _ => "VALUE",
                };
                let message = format!(
                    "no stub for {what} in case {:?}; add `stubs.{} = {example}` to the case, or \
                     [[case.calls]] with fn = \"{}\", args = [{first}] and returns, raises or hangs",
                    stubs.case.name, f.name, f.name
                );
                stubs.missing.borrow_mut().get_or_insert(message.clone());
                finish(Outcome::Error("no stub".into()));
                return Err(fault(message, position));
            }
        },
    };
    // A float result given as an integer (`load_avg = 1`) reads as the float it stands for.
    let value = match (f.returns(), value.as_int()) {
        (Some(Type::Float), Ok(i)) => Dynamic::from_float(i as f64),
        _ => value,
    };
    let value = complete(f, value, args);
    let (passed, shown) = match value.read_lock::<rhai::Map>() {
        Some(map) => (
            map.get("ok").and_then(|ok| ok.as_bool().ok()) != Some(false),
            map.get("status")
                .map_or_else(|| value.to_string(), |s| s.to_string()),
        ),
        None => (value.as_bool() != Ok(false), value.to_string()),
    };
    finish(if passed {
        Outcome::Pass(shown)
    } else {
        Outcome::Fail(shown)
    });
    Ok(value)
}

/// Install the stub of `f` at every arity its signatures name.
pub fn register_stub(engine: &mut Engine, host: &Rc<Host>, stubs: &Rc<Stubs>, f: &'static HostFn) {
    for arity in f.arities() {
        let (h, s) = (host.clone(), stubs.clone());
        engine.register_raw_fn(
            f.name,
            vec![TypeId::of::<Dynamic>(); arity],
            move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| {
                let args: Vec<Dynamic> = args.iter().map(|a| (**a).clone()).collect();
                answer(&h, &s, &ctx, f, &args)
            },
        );
    }
}

/// `sleep` and the like under `rhai-probe test`: return at once.
pub fn register_instant(engine: &mut Engine, f: &'static HostFn) {
    for arity in f.arities() {
        engine.register_raw_fn(
            f.name,
            vec![TypeId::of::<Dynamic>(); arity],
            |_: NativeCallContext, _: &mut [&mut Dynamic]| Ok(Dynamic::UNIT),
        );
    }
}

/// What one case came to.
pub struct CaseResult {
    pub name: String,
    pub passed: bool,
    /// `ok    name` or `FAIL  name: why`.
    pub line: String,
    /// Why it failed, for JSON and JUnit.
    pub problem: Option<String>,
    pub verdict: String,
    pub elapsed: std::time::Duration,
}

/// Compare a case's verdict with what it expects.
pub fn judge_case(
    case: &Case,
    verdict_line: &str,
    exit: Exit,
    missing: Option<String>,
) -> CaseResult {
    let result = |problem: Option<String>| CaseResult {
        name: case.name.clone(),
        passed: problem.is_none(),
        line: match &problem {
            None => format!("ok    {}", case.name),
            Some(p) => format!("FAIL  {}: {p}", case.name),
        },
        problem,
        verdict: verdict_line.to_string(),
        elapsed: std::time::Duration::ZERO,
    };
    if let Some(message) = missing {
        return result(Some(message));
    }
    let expected = Exit::from_key(case.expect.get_ref());
    let mut problems = Vec::new();
    if expected != Some(exit) {
        problems.push(format!(
            "expected {}, got {}",
            case.expect.get_ref(),
            exit.key()
        ));
    }
    if let Some(reason) = &case.reason {
        if !verdict_line.contains(reason.as_str()) {
            problems.push(format!("the verdict does not contain {reason:?}"));
        }
    }
    if problems.is_empty() {
        result(None)
    } else {
        result(Some(format!("{}: {verdict_line}", problems.join("; "))))
    }
}

/// The table in docs/testing.md: every function a case must answer, what its answer is, and
/// for map results each key with the default a stub that leaves it out gets.
pub fn stub_table() -> String {
    let mut out = String::from("| function | a stub gives | e.g. | keys a stub may leave out, and their defaults |\n|---|---|---|---|\n");
    for f in host::functions() {
        let Stub::Answer { example, .. } = f.stub else {
            continue;
        };
        let returns = f.returns().unwrap_or(Type::Any);
        let keys: Vec<String> = f
            .keys
            .iter()
            .map(|k| format!("`{}` ({}): {}", k.name, k.ty.word(), k.stub.describe()))
            .collect();
        let what = match (returns, f.fails) {
            (Type::Map, _) => "a table".to_string(),
            (t, Fails::False) => format!("{} (`raises` answers false with that reason)", t.word()),
            (t, _) => t.word().to_string(),
        };
        out.push_str(&format!(
            "| `{}` | {what} | `{}` | {} |\n",
            f.name,
            example.replace('|', "\\|"),
            if keys.is_empty() {
                "".to_string()
            } else {
                keys.join("<br>").replace('|', "\\|")
            }
        ));
    }
    out
}

/// A first cases file for a script, valid as it stands: a case where every function that reads
/// the world answers well (the declarations' examples) and one where the first of them fails.
pub fn starter(script: &Path) -> Result<String, String> {
    let (_, ast) = crate::probe::check(script, &rhai::Map::new()).map_err(|failure| {
        let (verdict, _) = *failure;
        format!(
            "{}; fix it first (`rhai-probe check` shows where)",
            verdict.reason
        )
    })?;
    let called: Vec<&'static HostFn> = crate::lint::called_functions(&ast)
        .iter()
        .filter_map(|name| host::find(name))
        .filter(|f| f.stubbed())
        .collect();
    let shown = crate::probe::display_name(script);
    let mut out = format!(
        "# Cases for {shown}: `rhai-probe test {shown}` (docs/testing.md).\n\
         # Written by `rhai-probe test --init`: check each value and the expected verdicts.\n"
    );
    let answers = |failing_first: bool| -> String {
        let mut lines = String::new();
        for (i, f) in called.iter().enumerate() {
            if let Stub::Answer { example, failing } = f.stub {
                let value = if failing_first && i == 0 {
                    failing
                } else {
                    example
                };
                lines.push_str(&format!("stubs.{} = {value}\n", f.name));
            }
        }
        lines
    };
    out.push_str(&format!(
        "\n[[case]]\nname = \"every call answers well\"\nexpect = \"healthy\"\n{}",
        answers(false)
    ));
    if let Some(first) = called.first() {
        out.push_str(&format!(
            "\n[[case]]\nname = \"{} fails\"\nexpect = \"unhealthy\"\n{}",
            first.name,
            answers(true)
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(cases: &str) -> String {
        parse_cases(cases, "p.cases.toml").unwrap_err()
    }

    #[test]
    fn stubs_are_checked_against_the_declarations() {
        let head = "[[case]]\nname = \"c\"\nexpect = \"healthy\"\n";
        assert_eq!(
            error(&format!("{head}stubs.http_get = {{ stauts = 503 }}\n")),
            "p.cases.toml:4:20: case \"c\": stubs.http_get: http_get's result has no key 'stauts'; did you mean 'status'? its keys: status, ok, body, headers, elapsed_ms, truncated, url, tls"
        );
        assert_eq!(
            error(&format!("{head}stubs.http_get = {{ status = \"200\" }}\n")),
            "p.cases.toml:4:20: case \"c\": stubs.http_get: 'status' is an integer, not a string (write status = 200)"
        );
        assert!(error(&format!("{head}stubs.load_avg = \"high\"\n"))
            .starts_with("p.cases.toml:4:18: case \"c\": stubs.load_avg: load_avg returns a float, not a string"));
        assert!(error(&format!("{head}stubs.htp_get = 1\n"))
            .starts_with("p.cases.toml:4:7: htp_get is not a function that can be stubbed; did you mean http_get?"));
        assert!(error(&format!("{head}stubs.check = true\n")).contains("cannot be stubbed"));
        assert!(error(&format!(
            "{head}[[case.calls]]\nfn = \"tcp_open\"\nargs = [\"a\", 1, {{}}, 4]\nreturns = true\n"
        ))
        .contains("tcp_open takes at most 3 arguments"));
        assert!(error("[[case]]\nname = \"c\"\nexpect = \"fine\"\n")
            .starts_with("p.cases.toml:3:10: case \"c\": expect = \"fine\""));
        // Integers stand for floats, and every declared example is a valid stub.
        parse_cases(&format!("{head}stubs.load_avg = 1\n"), "p").unwrap();
        for f in host::functions() {
            if let Stub::Answer { example, failing } = f.stub {
                for value in [example, failing] {
                    parse_cases(&format!("{head}stubs.{} = {value}\n", f.name), "p")
                        .unwrap_or_else(|e| panic!("{}: {value}: {e}", f.name));
                }
            }
        }
    }
}

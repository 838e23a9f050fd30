//! One probe run: read the script, compile it once, evaluate it, and turn the result (or the
//! error) into a [`Verdict`] with the reason a person needs.

use std::{io::Read, path::Path, rc::Rc, time::Duration};

use rhai::{Dynamic, Engine, EvalAltResult, Scope, AST};

use crate::{
    deadline::{human, Deadline},
    diagnostic::{self, location, Diagnostic},
    engine,
    exit_code::Exit,
    host::Host,
    trace::{Pos, Trace},
};

/// Scripts larger than this are refused before they are parsed.
pub const MAX_SCRIPT_BYTES: usize = 1024 * 1024;

/// A script's text as it will be compiled, with the name used in every message.
pub struct Script {
    pub name: String,
    pub text: String,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Verdict {
    pub exit: Exit,
    /// The one-line reason, without the `label:` prefix and the elapsed time.
    pub reason: String,
    /// For script faults and check errors: the full diagnostic for stderr.
    pub diagnostic: Option<Box<Diagnostic>>,
    /// The script's value when it returned one.
    pub value: Option<String>,
    pub elapsed: Duration,
}

impl Verdict {
    pub fn new(exit: Exit, reason: impl Into<String>) -> Self {
        Verdict {
            exit,
            reason: reason.into(),
            diagnostic: None,
            value: None,
            elapsed: Duration::ZERO,
        }
    }

    fn with_diagnostic(exit: Exit, source: &str, d: Diagnostic) -> Self {
        let reason = match exit {
            // A failed check reads best as "what failed (where)".
            Exit::CheckError if d.pos.is_known() => format!("{}{}", d.message, at(source, d.pos)),
            _ => d.one_line(source),
        };
        Verdict {
            diagnostic: Some(Box::new(d)),
            ..Verdict::new(exit, reason)
        }
    }
}

/// ` (probe.rhai:3:9)`, where a reason says where; nothing for a URL target, whose one generated
/// call has no line a person wrote.
fn at(source: &str, pos: Pos) -> String {
    if crate::target::is_target_name(source) {
        String::new()
    } else {
        format!(" ({})", location(source, pos))
    }
}

/// The name of an inline script (`-e EXPR`) in every message: `<eval>:1:9`.
pub const EVAL: &str = "<eval>";

/// A script given on the command line (`-e EXPR`).
pub fn inline(text: &str) -> Script {
    crate::redact::remember_in_source(text);
    Script {
        name: EVAL.into(),
        text: text.to_string(),
    }
}

/// How a script path is named in every message: the path as given, or `<stdin>` for `-`.
pub fn display_name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_string()
    } else {
        crate::redact::path(path)
    }
}

/// Read a script from a path or `-` (standard input): at most 1 MiB, UTF-8; a leading BOM is
/// dropped and a `#!` first line is kept as a comment, so positions match the file.
pub fn load(path: &Path) -> Result<Script, Verdict> {
    let name = display_name(path);
    if let Some(generated) = crate::target::script_for(path) {
        // A URL target: its one call is the script (src/target.rs).
        return match generated {
            // Its one credential, the target's, was remembered when `name` masked it.
            Ok(text) => Ok(Script { name, text }),
            Err(message) => Err(fault(crate::redact::scrub(&message).into_owned())),
        };
    }
    let reader: Box<dyn Read> = if path.as_os_str() == "-" {
        Box::new(std::io::stdin())
    } else {
        let file = std::fs::File::open(path).map_err(|e| {
            let hint = match e.kind() {
                std::io::ErrorKind::NotFound => {
                    "; check the path (in a pod: is the ConfigMap mounted there?)"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "; check the file's mode and the container's user"
                }
                _ => "",
            };
            fault(format!(
                "{name}: cannot read the script: {}{hint}",
                crate::host::io_reason(&e)
            ))
        })?;
        Box::new(file)
    };
    let mut bytes = Vec::new();
    reader
        .take(MAX_SCRIPT_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fault(format!("{name}: cannot read the script: {e}")))?;
    if bytes.len() > MAX_SCRIPT_BYTES {
        return Err(fault(format!(
            "{name}: the script is larger than {} KiB; a probe script should be small",
            MAX_SCRIPT_BYTES / 1024
        )));
    }
    let mut text = String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count() + 1;
        fault(format!(
            "{name}:{line}: the script is not UTF-8 text (invalid byte at offset {at}); save it as UTF-8"
        ))
    })?;
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    if text.starts_with("#!") {
        // A comment, on the same line, so every later line keeps its positions. "// ", not
        // "//": `#!/usr/bin/env` would become `///usr…`, which Rhai reads as a doc comment.
        text.replace_range(..2, "// ");
    }
    crate::redact::remember_in_source(&text);
    Ok(Script { name, text })
}

fn fault(reason: String) -> Verdict {
    Verdict::new(Exit::ScriptFault, reason)
}

/// The `--var` values as script constants (so strict variables know them at compile time).
pub fn scope_of(vars: &rhai::Map) -> Scope<'static> {
    let mut scope = Scope::new();
    for (name, value) in vars {
        scope.push_constant_dynamic(name.to_string(), value.clone());
    }
    scope
}

pub fn compile(engine: &Engine, scope: &Scope, script: &Script) -> Result<AST, Verdict> {
    let mut ast = engine
        .compile_with_scope(scope, &script.text)
        .map_err(|e| {
            Verdict::with_diagnostic(
                Exit::ScriptFault,
                &script.name,
                diagnostic::from_parse(&e, &script.text),
            )
        })?;
    ast.set_source(script.name.as_str());
    Ok(ast)
}

/// Warn about `--var`s the script never mentions: a misspelt `--var urll=` would otherwise leave
/// the script quietly using its default.
pub fn warn_unused_vars(script: &Script, vars: &rhai::Map) {
    let words: Vec<&str> = script
        .text
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .collect();
    for name in vars.keys() {
        if !words.contains(&name.as_str()) {
            let hint = match diagnostic::closest(name, words.iter().copied()) {
                Some(near) => format!("; did you mean --var {near}=...?"),
                None => String::new(),
            };
            log::warn!(
                "--var {name}: {} never mentions '{name}'{hint}",
                script.name
            );
        }
    }
}

/// Compile and evaluate `script` under `deadline`, recording calls in `trace`; with `stubs` (`rhai-probe test`), against a case's stubs instead of the world; with its state kept in
/// `store`.
pub fn run(
    script: &Script,
    vars: rhai::Map,
    deadline: Deadline,
    trace: &Trace,
    stubs: Option<Rc<crate::testing::Stubs>>,
    store: crate::state::Store,
) -> Verdict {
    let mut host = Host::new(deadline, trace.clone(), script.name.clone(), vars);
    if let Some(host) = Rc::get_mut(&mut host) {
        host.stubs = stubs;
    }
    start_state(&host, store, script, deadline);
    let engine = engine::for_script(&host, &script.text);
    let mut scope = scope_of(&host.vars);
    let verdict = match compile(&engine, &scope, script) {
        Ok(ast) => {
            let mut verdict = evaluate(&engine, &ast, &mut scope, &script.name, trace, deadline);
            keep_state(&host, &mut verdict, trace);
            // Freeing the AST and the engine's function tables is work the OS does for free at
            // exit; this binary starts and exits in every pod every probe period.
            std::mem::forget(ast);
            verdict
        }
        Err(mut verdict) => {
            verdict.elapsed = deadline.elapsed();
            verdict
        }
    };
    std::mem::forget(engine);
    std::mem::forget(scope);
    verdict
}

/// Give the run its state (see `crate::state`): the probe's own, named after its script (an
/// inline script after its text as well), read at once when the script may use it.
pub fn start_state(host: &Host, store: crate::state::Store, script: &Script, deadline: Deadline) {
    if matches!(store, crate::state::Store::Off) {
        // The host's own session is off: nothing to read, write or even time.
        return;
    }
    let key = if script.name == EVAL {
        format!("{EVAL}{}", script.text)
    } else {
        script.name.clone()
    };
    let mut session = crate::state::Session::new(store, &key);
    session.prepare(&script.text, deadline.remaining());
    *host.state.borrow_mut() = session;
}

/// The run is judged: keep its state and verdict for the next runs, say in the verdict line if
/// no state could be kept, and put what was read and written in the trace.
pub fn keep_state(host: &Host, verdict: &mut Verdict, trace: &Trace) {
    let mut session = host.state.borrow_mut();
    if let Some(why) = session.finish(verdict.exit.code(), &verdict.reason) {
        verdict.reason.push_str(&format!(" ({why})"));
    }
    trace.lock().state = std::mem::take(&mut session.notes);
}

/// Evaluate a compiled script once and judge the result: the one step `run` and `serve` share.
/// The engine must have been built on a `Host` whose deadline is `deadline` and whose trace is
/// `trace`.
pub fn evaluate(
    engine: &Engine,
    ast: &AST,
    scope: &mut Scope,
    source: &str,
    trace: &Trace,
    deadline: Deadline,
) -> Verdict {
    let mut verdict = match engine.eval_ast_with_scope::<Dynamic>(scope, ast) {
        Ok(value) => judge(source, value, trace),
        Err(err) => classify(source, *err, trace, deadline),
    };
    verdict.elapsed = deadline.elapsed();
    verdict
}

/// The script finished with `value`: healthy, unhealthy, or not a boolean at all.
fn judge(source: &str, value: Dynamic, trace: &Trace) -> Verdict {
    let t = trace.lock();
    let failed: Vec<String> = t
        .checks
        .iter()
        .filter(|c| !c.passed)
        .map(|c| {
            format!(
                "check {:?} failed: {}{}",
                c.name,
                t.explain(c),
                at(source, c.pos)
            )
        })
        .collect();
    let passed = match value.as_bool() {
        Ok(b) => b,
        // A script may end with its last `check(...);`: then the checks are the verdict.
        Err(_) if value.is_unit() && !t.checks.is_empty() => failed.is_empty(),
        Err(type_name) => return not_a_boolean(source, &value, type_name, t.calls.is_empty()),
    };
    let mut verdict = if passed && failed.is_empty() {
        let reason = match t.checks.len() {
            // A URL target's one call says what was checked: `TCP db:5432 -> connected`.
            0 if crate::target::is_target_name(source) && !t.calls.is_empty() => t
                .calls
                .iter()
                .map(|c| c.short())
                .collect::<Vec<_>>()
                .join(", "),
            0 => format!("{source} returned true"),
            n => {
                let names: Vec<&str> = t.checks.iter().map(|c| c.name.as_str()).collect();
                let mut reason = format!(
                    "{n} check{} passed ({})",
                    if n == 1 { "" } else { "s" },
                    names.join(", ")
                );
                // Those that passed only by their rule (`grace`, `failures`) say so.
                for c in t.checks.iter().filter(|c| c.note.is_some()) {
                    reason.push_str(&format!(
                        "; check {:?} {}{}",
                        c.name,
                        t.explain(c),
                        at(source, c.pos)
                    ));
                }
                reason
            }
        };
        Verdict::new(Exit::Healthy, reason)
    } else if !failed.is_empty() {
        Verdict::new(Exit::Unhealthy, failed.join("; "))
    } else {
        let failed_calls: Vec<String> = t
            .calls
            .iter()
            .filter(|c| c.failed())
            .map(|c| format!("{}{}", c.short(), at(source, c.pos)))
            .collect();
        let reason = if !failed_calls.is_empty() {
            failed_calls.join(", ")
        } else if t.calls.is_empty() {
            format!("{source} returned false")
        } else {
            let all: Vec<String> = t.calls.iter().map(|c| c.short()).collect();
            format!("{source} returned false after {}", all.join(", "))
        };
        Verdict::new(Exit::Unhealthy, reason)
    };
    verdict.value = (!value.is_unit()).then(|| value.to_string());
    verdict
}

fn not_a_boolean(source: &str, value: &Dynamic, type_name: &str, empty: bool) -> Verdict {
    let shown: String = value.to_string().chars().take(40).collect();
    let reason = if value.is_unit() && empty {
        format!(
            "{source}: the script returned nothing; a probe must end with a boolean expression, e.g. http_get(url).ok"
        )
    } else if value.is_unit() {
        format!(
            "{source}: the script's last statement has no value (a let, a loop, an if without else); a probe must end with a boolean expression, e.g. http_get(url).ok"
        )
    } else if value.is_string() {
        format!(
            "{source}: the script returned the string {shown:?}, not a boolean; end it with a boolean expression (no quotes), e.g. http_get(url).ok"
        )
    } else {
        let type_name = match type_name {
            "i64" => "int",
            "f64" => "float",
            "map" | "array" | "char" => type_name,
            other => other.rsplit("::").next().unwrap_or(other),
        };
        format!(
            "{source}: the script returned {shown} ({type_name}), not a boolean; end it with a boolean expression, e.g. load_avg() < 4.0"
        )
    };
    let mut verdict = Verdict::new(Exit::ScriptFault, reason);
    verdict.value = (!value.is_unit()).then(|| value.to_string());
    verdict
}

/// The script stopped with an error: which kind decides the exit code.
fn classify(source: &str, err: EvalAltResult, trace: &Trace, deadline: Deadline) -> Verdict {
    match err {
        EvalAltResult::ErrorTerminated(during, pos) => {
            let during = during
                .into_string()
                .unwrap_or_else(|_| engine::STOPPED_RUNNING.into());
            deadline_verdict(source, deadline.limit(), &during, pos.into())
        }
        // `exit(value)` ends the script with that value.
        EvalAltResult::Exit(value, _) => judge(source, value, trace),
        err if is_thrown(&err) => {
            Verdict::with_diagnostic(Exit::CheckError, source, diagnostic::from_eval(&err))
        }
        err => Verdict::with_diagnostic(Exit::ScriptFault, source, diagnostic::from_eval(&err)),
    }
}

/// An error thrown at run time (a host call's transport failure or `throw`), even from inside
/// a function: a failed check, not a broken script.
fn is_thrown(err: &EvalAltResult) -> bool {
    match err {
        EvalAltResult::ErrorRuntime(..) => true,
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => is_thrown(inner),
        _ => false,
    }
}

pub fn deadline_verdict(source: &str, limit: Duration, during: &str, pos: Pos) -> Verdict {
    let mut reason = format!("the {} deadline passed {during}", human(limit));
    if pos.is_known() {
        reason.push_str(&at(source, pos));
    }
    Verdict::new(Exit::Deadline, reason)
}

/// The verdict when SIGTERM ends a run: what it interrupted, and where.
pub fn terminated_verdict(source: &str, during: &str, pos: Pos) -> Verdict {
    let mut reason = format!("SIGTERM arrived {during}");
    if pos.is_known() {
        reason.push_str(&at(source, pos));
    }
    Verdict::new(Exit::Terminated, reason)
}

/// `rhai-probe check`: compile only.
/// Load and compile a script without running it: the script and its AST, or the verdict.
#[allow(clippy::type_complexity)]
pub fn check(
    path: &Path,
    vars: &rhai::Map,
) -> Result<(Script, AST), Box<(Verdict, Option<Script>)>> {
    let script = load(path).map_err(|v| Box::new((v, None)))?;
    check_script(script, vars)
}

/// Compile a loaded script without running it.
#[allow(clippy::type_complexity)]
pub fn check_script(
    script: Script,
    vars: &rhai::Map,
) -> Result<(Script, AST), Box<(Verdict, Option<Script>)>> {
    let host = Host::new(
        Deadline::start(Duration::from_secs(1)),
        Trace::default(),
        script.name.clone(),
        vars.clone(),
    );
    let mut engine = engine::build(&host);
    // The lint reads the script as written: the optimizer would fold a literal options map
    // into one constant, and the positions of its keys with it.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    match compile(&engine, &scope_of(vars), &script) {
        Ok(ast) => Ok((script, ast)),
        Err(v) => Err(Box::new((v, Some(script)))),
    }
}

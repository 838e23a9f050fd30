//! Script-level helpers that are not I/O: named checks, `--var` defaults, and a `sleep` that
//! respects the deadline (Rhai's own would block past it).

use std::{rc::Rc, time::Duration};

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext, INT};

use super::{
    deadline_error,
    decl::{Fails, HostFn, Opt, OptType, Stub, Time},
    fault,
    options::Options,
    pos, Host, RhaiResult,
};
use crate::state::{self, Rule};

pub const FUNCTIONS: &[HostFn] = &[CHECK, VAR_OR, SLEEP];

pub const CHECK: HostFn = HostFn {
    name: "check",
    signatures: &[
        "check(name: string, value: bool) -> bool",
        "check(name: string, f: closure) -> bool",
        "check(name: string, value: bool, options: map) -> bool",
        "check(name: string, f: closure, options: map) -> bool",
    ],
    summary: "record a named check; the verdict lists every failed one (a closure's errors fail only that check); #{grace} or #{failures, within} judge it across runs",
    options: &[
        Opt {
            key: "grace",
            ty: OptType::Duration,
            default: "none",
            doc: "a failure counts only once the check has been failing without a break this long (`\"3m\"`); a success resets it; needs `--state-dir`",
        },
        Opt {
            key: "failures",
            ty: OptType::Int,
            default: "none",
            doc: "with `within`: failed only when it failed at least this many times in that window, in a row or not; needs `--state-dir`",
        },
        Opt {
            key: "within",
            ty: OptType::Duration,
            default: "none",
            doc: "the window of `failures` (`\"5m\"`)",
        },
    ],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_check,
};

pub const VAR_OR: HostFn = HostFn {
    name: "var_or",
    signatures: &["var_or(name: string, default: any) -> any"],
    summary: "the --var NAME=VALUE given on the command line, or the default",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_var_or,
};

pub const SLEEP: HostFn = HostFn {
    name: "sleep",
    signatures: &["sleep(seconds: int)", "sleep(seconds: float)"],
    summary:
        "pause (e.g. before a retry); stops the probe with exit 4 if it would outlast the deadline",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Waits,
    secrets: &[],
    stub: Stub::Instant,
    reach: crate::host::decl::Reach::Nothing,
    register: register_sleep,
};

/// `check(name, value)`, `check(name, || expr)` → bool
///
/// Records a named check and returns its result. The probe is unhealthy when any check fails,
/// whatever the script returns; a script may end with `()` after its checks, and then the
/// verdict is theirs. With a closure, an error it throws (refused, timeout, `throw`) fails that
/// check only, so the other checks still run and the verdict lists every failure. Script bugs
/// (unknown function, missing property), limits and the deadline are never caught here.
fn check_value(host: &Host, ctx: &NativeCallContext, name: &str, passed: bool) -> bool {
    host.trace
        .record_check(name, passed, None, pos(ctx), &host.source);
    passed
}

/// The rule of a check's options: `grace`, or `failures` with `within`.
fn rule_of(options: &Options) -> Result<Option<Rule>, String> {
    let period = |key: &str| -> Result<Option<f64>, String> {
        match options.value(key) {
            None => Ok(None),
            Some(v) if v.is_int() || v.is_float() => {
                let secs = v.as_float().unwrap_or_else(|_| v.as_int().unwrap_or(0) as f64);
                state::period(&secs.to_string()).map(Some).map_err(|e| format!("option '{key}': {e}"))
            }
            Some(v) => state::period(&v.to_string())
                .map(Some)
                .map_err(|e| format!("option '{key}': {e}")),
        }
    };
    let failures = options
        .int("failures")
        .map_err(|(super::HostError::Fault(m) | super::HostError::Transport(m) | super::HostError::Denied(m))| m)?;
    match (period("grace")?, failures, period("within")?) {
        (None, None, None) => Ok(None),
        (Some(grace), None, None) => Ok(Some(Rule::Grace(grace))),
        (None, Some(n), Some(within)) if (1..=1000).contains(&n) && within > 0.0 => {
            Ok(Some(Rule::Window { failures: n as u32, within }))
        }
        (None, Some(n), Some(_)) if !(1..=1000).contains(&n) => {
            Err(format!("option 'failures' must be 1 to 1000, got {n}"))
        }
        (None, Some(_), None) => Err("option 'failures' needs 'within' (\"5m\"): failures in what window?".into()),
        (None, None, Some(_)) => Err("option 'within' needs 'failures': how many failures within it?".into()),
        (Some(_), _, _) => Err("give 'grace', or 'failures' with 'within', not both".into()),
        (None, Some(_), Some(_)) => Err("option 'within' must be longer than zero".into()),
    }
}

/// A check with options: its result, judged by its rule against the probe's earlier runs.
/// Without state for this run (an unwritable directory), a failure fails as it would without a
/// rule, and the verdict line says why.
fn check_judged(
    host: &Host,
    ctx: &NativeCallContext,
    name: &str,
    passed: bool,
    error: Option<String>,
    options: &Map,
) -> RhaiResult<bool> {
    let options = Options::new(options, &CHECK).map_err(|e| e.into_fault("check", ctx))?;
    let rule = rule_of(&options)
        .map_err(|m| fault(format!("check({name:?}, …): {m}"), ctx.call_position()))?;
    let Some(rule) = rule else {
        host.trace
            .record_check(name, passed, error, pos(ctx), &host.source);
        return Ok(passed);
    };
    let judged = super::state::with_state(host, ctx, "check", |state, now| {
        super::state::admit(&state.checks, name, "check")?;
        let check = state.checks.entry(name.to_string()).or_default();
        Ok(state::judge(check, passed, rule, now))
    })?;
    let (counted, note) = match judged {
        Some(j) => (j.passed, j.note),
        None => (passed, None),
    };
    host.trace
        .record_judged_check(name, counted, error, pos(ctx), &host.source, note);
    Ok(counted)
}

/// A `--var` takes the type of its default where that is lossless (`90` for a default of `90.0`
/// becomes `90.0`, a number for a string default becomes its text). A value that cannot be the
/// default's type is the script's fault, said at once: comparing a float with a string is
/// quietly `false` in Rhai, and would fail a check for the wrong reason.
fn var_as_default(
    name: &str,
    given: &Dynamic,
    default: &Dynamic,
    position: rhai::Position,
) -> RhaiResult<Dynamic> {
    if default.is_unit() || given.type_id() == default.type_id() {
        return Ok(given.clone());
    }
    if default.is_float() {
        if let Ok(i) = given.as_int() {
            return Ok(Dynamic::from_float(i as rhai::FLOAT));
        }
    }
    if default.is_int() && given.is_float() {
        return Ok(given.clone());
    }
    if default.is_string() {
        return Ok(Dynamic::from(given.to_string()));
    }
    Err(fault(
        format!(
            "var_or({name:?}, {default}): --var {name}={given} is {}, but the default is {}; give {}{}",
            kind(given),
            kind(default),
            kind(default),
            if given.is_string() && (default.is_int() || default.is_float()) {
                " (numbers are plain decimals: 1000000, not 1e6)"
            } else {
                ""
            }
        ),
        position,
    ))
}

fn kind(value: &Dynamic) -> &'static str {
    if value.is_int() {
        "an integer"
    } else if value.is_float() {
        "a number"
    } else if value.is_bool() {
        "a boolean (true/false)"
    } else if value.is_string() {
        "a string"
    } else {
        "a value of another type"
    }
}

fn check_closure(host: &Host, ctx: &NativeCallContext, name: &str, f: FnPtr) -> RhaiResult<bool> {
    let (passed, error) = run_closure(ctx, name, f)?;
    host.trace
        .record_check(name, passed, error, pos(ctx), &host.source);
    Ok(passed)
}

/// A check's closure run: its result, or false with the error it threw.
fn run_closure(ctx: &NativeCallContext, name: &str, f: FnPtr) -> RhaiResult<(bool, Option<String>)> {
    match f.call_within_context::<Dynamic>(ctx, ()) {
        Ok(value) => match value.as_bool() {
            Ok(passed) => Ok((passed, None)),
            Err(type_name) => Err(fault(
                format!("check({name:?}, ...): the closure returned {type_name}, not a boolean"),
                ctx.call_position(),
            )),
        },
        Err(err) => match thrown(&err) {
            Some(message) => Ok((false, Some(message))),
            None => Err(err),
        },
    }
}

/// The message of an error a check may absorb: one thrown at run time (by a host call's
/// transport failure or the script's `throw`), possibly from inside a function.
fn thrown(err: &EvalAltResult) -> Option<String> {
    match err {
        EvalAltResult::ErrorRuntime(value, _) => Some(
            value
                .read_lock::<rhai::ImmutableString>()
                .map(|s| crate::diagnostic::split_help(&s).0.to_string())
                .unwrap_or_else(|| format!("threw {value}")),
        ),
        EvalAltResult::ErrorInFunctionCall(_, _, inner, _) => thrown(inner),
        _ => None,
    }
}

fn sleep(host: &Host, ctx: &NativeCallContext, seconds: f64) -> RhaiResult<()> {
    if !seconds.is_finite() || seconds <= 0.0 {
        return Ok(());
    }
    let wanted = Duration::from_secs_f64(seconds.min(86_400.0));
    let left = host.deadline().remaining();
    if wanted >= left {
        std::thread::sleep(left);
        return Err(deadline_error(
            format!("during sleep({seconds})"),
            ctx.call_position(),
        ));
    }
    std::thread::sleep(wanted);
    Ok(())
}

fn register_check(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "check",
        move |ctx: NativeCallContext, name: &str, value: bool| check_value(&h, &ctx, name, value),
    );
    let h = host.clone();
    engine.register_fn(
        "check",
        move |ctx: NativeCallContext, name: &str, f: FnPtr| check_closure(&h, &ctx, name, f),
    );
    let h = host.clone();
    engine.register_fn(
        "check",
        move |ctx: NativeCallContext, name: &str, value: bool, options: Map| {
            check_judged(&h, &ctx, name, value, None, &options)
        },
    );
    let h = host.clone();
    engine.register_fn(
        "check",
        move |ctx: NativeCallContext, name: &str, f: FnPtr, options: Map| {
            let (passed, error) = run_closure(&ctx, name, f)?;
            check_judged(&h, &ctx, name, passed, error, &options)
        },
    );
    engine.register_fn(
        "check",
        |ctx: NativeCallContext, name: &str, value: Dynamic, _: Map| -> RhaiResult<bool> {
            Err(fault(
                format!(
                    "check({name:?}, ...): the second argument must be a boolean or a closure returning one (|| ...), got {}",
                    value.type_name()
                ),
                ctx.call_position(),
            ))
        },
    );
    engine.register_fn(
        "check",
        |ctx: NativeCallContext, name: &str, value: Dynamic| -> RhaiResult<bool> {
            Err(fault(
                format!(
                    "check({name:?}, ...): the second argument must be a boolean or a closure returning one (|| ...), got {}",
                    value.type_name()
                ),
                ctx.call_position(),
            ))
        },
    );
}

fn register_var_or(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "var_or",
        move |ctx: NativeCallContext, name: &str, default: Dynamic| match h.vars.get(name) {
            Some(given) => var_as_default(name, given, &default, ctx.call_position()),
            None => Ok(default),
        },
    );
}

fn register_sleep(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, seconds: f64| {
        sleep(&h, &ctx, seconds)
    });
    let h = host.clone();
    engine.register_fn("sleep", move |ctx: NativeCallContext, seconds: INT| {
        sleep(&h, &ctx, seconds as f64)
    });
}

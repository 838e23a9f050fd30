//! Script-level helpers that are not I/O: named checks, `--var` defaults, and a `sleep` that
//! respects the deadline (Rhai's own would block past it).

use std::{rc::Rc, time::Duration};

use rhai::{Dynamic, Engine, EvalAltResult, FnPtr, NativeCallContext, INT};

use super::{
    deadline_error,
    decl::{Fails, HostFn, Stub, Time},
    fault, pos, Host, RhaiResult,
};

pub const FUNCTIONS: &[HostFn] = &[CHECK, VAR_OR, SLEEP];

pub const CHECK: HostFn = HostFn {
    name: "check",
    signatures: &[
        "check(name: string, value: bool) -> bool",
        "check(name: string, f: closure) -> bool",
    ],
    summary: "record a named check; the verdict lists every failed one (a closure's errors fail only that check)",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
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
    match f.call_within_context::<Dynamic>(ctx, ()) {
        Ok(value) => match value.as_bool() {
            Ok(passed) => Ok(check_value(host, ctx, name, passed)),
            Err(type_name) => Err(fault(
                format!("check({name:?}, ...): the closure returned {type_name}, not a boolean"),
                ctx.call_position(),
            )),
        },
        Err(err) => match thrown(&err) {
            Some(message) => {
                host.trace
                    .record_check(name, false, Some(message), pos(ctx), &host.source);
                Ok(false)
            }
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

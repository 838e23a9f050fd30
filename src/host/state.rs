//! `rate`, `remember`, `recall` and `history`: what a probe keeps between its runs (see
//! `crate::state` for where and how). A run without a place for state (`--state-dir`) is at
//! fault when it calls one; a run whose state could not be read (a read-only directory) goes
//! on without it: `remember` keeps nothing, `recall` gives the default, `rate` and `history` as
//! on a first run, and the verdict line says so.

use std::rc::Rc;

use rhai::{Array, Dynamic, Engine, Map, NativeCallContext, FLOAT, INT};

use super::{
    decl::{Fails, HostFn, Stub, Time},
    fault, Host, RhaiResult,
};
use crate::state::{self, State};

pub const FUNCTIONS: &[HostFn] = &[RATE, REMEMBER, RECALL, HISTORY];

pub const RATE: HostFn = HostFn {
    name: "rate",
    signatures: &[
        "rate(name: string, value: int) -> any",
        "rate(name: string, value: float) -> any",
    ],
    summary: "per second since the previous run's value of `name` (a float); () on the first run; a counter that went down counts from zero",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_rate,
};

pub const REMEMBER: HostFn = HostFn {
    name: "remember",
    signatures: &["remember(name: string, value: any)"],
    summary: "keep a small value (at most 4 KiB as JSON) for the next runs of this probe",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_remember,
};

pub const RECALL: HostFn = HostFn {
    name: "recall",
    signatures: &["recall(name: string, default: any) -> any"],
    summary: "the value an earlier run remembered under `name`, or the default",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_recall,
};

pub const HISTORY: HostFn = HostFn {
    name: "history",
    signatures: &["history() -> array"],
    summary: "this probe's last 20 verdicts, oldest first: #{at, ago, exit, verdict, reason}",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Real,
    reach: crate::host::decl::Reach::Nothing,
    register: register_history,
};

/// Run `body` on the probe's state; `Ok(None)` when this run has none (the verdict line says
/// why). No place for state at all is the script's fault, at the call.
pub fn with_state<T>(
    host: &Host,
    ctx: &NativeCallContext,
    function: &str,
    body: impl FnOnce(&mut State, f64) -> Result<T, String>,
) -> RhaiResult<Option<T>> {
    let mut session = host.state.borrow_mut();
    let now = session.now;
    match session.state(host.deadline().remaining()) {
        Err(hint) => Err(fault(format!("{function} {hint}"), ctx.call_position())),
        Ok(None) => Ok(None),
        Ok(Some(state)) => body(state, now)
            .map(Some)
            .map_err(|m| fault(format!("{function}: {m}"), ctx.call_position())),
    }
}

/// A name for a check, rate or value: not empty, not too long, and one of at most
/// `MAX_NAMES` of its kind.
pub fn admit<V>(map: &std::collections::BTreeMap<String, V>, name: &str, kind: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > state::MAX_NAME {
        return Err(format!(
            "a {kind} name must be 1 to {} characters",
            state::MAX_NAME
        ));
    }
    if !map.contains_key(name) && map.len() >= state::MAX_NAMES {
        return Err(format!(
            "a probe keeps at most {} {kind}s; {name:?} would be one more (names made up at run time?)",
            state::MAX_NAMES
        ));
    }
    Ok(())
}

fn rate(host: &Host, ctx: &NativeCallContext, name: &str, value: FLOAT) -> RhaiResult<Dynamic> {
    if !value.is_finite() {
        return Err(fault(
            format!("rate({name:?}, {value}): the value must be a finite number"),
            ctx.call_position(),
        ));
    }
    let per_second = with_state(host, ctx, "rate", |state, now| {
        admit(&state.rates, name, "rate")?;
        Ok(state::rate(&mut state.rates, name, value, now))
    })?;
    Ok(per_second.flatten().map_or(Dynamic::UNIT, Dynamic::from_float))
}

fn remember(host: &Host, ctx: &NativeCallContext, name: &str, value: Dynamic) -> RhaiResult<()> {
    let json: serde_json::Value = rhai::serde::from_dynamic(&value).map_err(|e| {
        fault(
            format!("remember({name:?}, …): a {} cannot be kept ({e}); keep numbers, strings, booleans, arrays and maps", value.type_name()),
            ctx.call_position(),
        )
    })?;
    let size = serde_json::to_vec(&json).map_or(usize::MAX, |b| b.len());
    if size > state::MAX_VALUE_BYTES {
        return Err(fault(
            format!(
                "remember({name:?}, …): the value is {size} bytes as JSON; at most {} are kept",
                state::MAX_VALUE_BYTES
            ),
            ctx.call_position(),
        ));
    }
    with_state(host, ctx, "remember", |state, _| {
        admit(&state.memory, name, "remembered value")?;
        state.memory.insert(name.to_string(), json);
        Ok(())
    })?;
    Ok(())
}

fn recall(host: &Host, ctx: &NativeCallContext, name: &str, default: Dynamic) -> RhaiResult<Dynamic> {
    let kept = with_state(host, ctx, "recall", |state, _| Ok(state.memory.get(name).cloned()))?;
    match kept.flatten() {
        Some(json) => rhai::serde::to_dynamic(json).map_err(|e| {
            fault(format!("recall({name:?}, …): {e}"), ctx.call_position())
        }),
        None => Ok(default),
    }
}

fn history(host: &Host, ctx: &NativeCallContext) -> RhaiResult<Array> {
    let entries = with_state(host, ctx, "history", |state, now| {
        Ok(state
            .history
            .iter()
            .map(|e| {
                let mut m = Map::new();
                m.insert("at".into(), crate::logging::rfc3339(e.wall, None).into());
                m.insert("ago".into(), Dynamic::from_float((now - e.at).max(0.0)));
                m.insert("exit".into(), Dynamic::from_int(INT::from(e.exit)));
                let verdict = crate::exit_code::Exit::from_code(e.exit).map_or("unknown", |x| x.key());
                m.insert("verdict".into(), verdict.into());
                m.insert("healthy".into(), (e.exit == 0).into());
                m.insert("reason".into(), e.reason.clone().into());
                Dynamic::from_map(m)
            })
            .collect::<Array>())
    })?;
    Ok(entries.unwrap_or_default())
}

fn register_rate(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("rate", move |ctx: NativeCallContext, name: &str, value: INT| {
        rate(&h, &ctx, name, value as FLOAT)
    });
    let h = host.clone();
    engine.register_fn("rate", move |ctx: NativeCallContext, name: &str, value: FLOAT| {
        rate(&h, &ctx, name, value)
    });
}

fn register_remember(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "remember",
        move |ctx: NativeCallContext, name: &str, value: Dynamic| remember(&h, &ctx, name, value),
    );
}

fn register_recall(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "recall",
        move |ctx: NativeCallContext, name: &str, default: Dynamic| recall(&h, &ctx, name, default),
    );
}

fn register_history(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("history", move |ctx: NativeCallContext| history(&h, &ctx));
}

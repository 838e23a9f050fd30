//! `load_avg` and `cpu_count`: the article's CPU check.
//!
//! Read straight from the kernel rather than through sysinfo: `System::load_average()` returns
//! zeros when `/proc/loadavg` cannot be read, and a probe must not turn "cannot tell" into
//! "idle, healthy".

use std::rc::Rc;

use rhai::{Engine, NativeCallContext, INT};

use super::{
    decl::{Fails, HostFn, Stub, Time},
    Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[LOAD_AVG, CPU_COUNT];

pub const LOAD_AVG: HostFn = HostFn {
    name: "load_avg",
    signatures: &["load_avg() -> float", "load_avg(minutes: int) -> float"],
    summary: "system load average over 1 (default), 5 or 15 minutes; inside a pod this is the node's load",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "0.5",
        failing: "7.9",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_load_avg,
};

pub const CPU_COUNT: HostFn = HostFn {
    name: "cpu_count",
    signatures: &["cpu_count() -> int"],
    summary: "CPUs this process may use (CPU affinity and cgroup quota respected)",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "4",
        failing: "1",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_cpu_count,
};

/// `load_avg()`, `load_avg(minutes)` → float
///
/// The 1-, 5- or 15-minute load average. Inside a container this is the **node's** load: the
/// kernel does not namespace it.
/// Throws (check error) when the kernel's value cannot be read; a script fault for any minutes
/// other than 1, 5 or 15.
fn load_avg(host: &Host, ctx: &NativeCallContext, minutes: INT) -> RhaiResult<f64> {
    let index = match minutes {
        1 => 0,
        5 => 1,
        15 => 2,
        _ => {
            return Err(super::fault(
                format!("load_avg({minutes}): minutes must be 1, 5 or 15"),
                ctx.call_position(),
            ))
        }
    };
    let what = if minutes == 1 {
        "load_avg()".to_string()
    } else {
        format!("load_avg({minutes})")
    };
    host.local(ctx, &LOAD_AVG, what, move || {
        let loads = read_load().map_err(HostError::Transport)?;
        Ok((loads[index], Outcome::Pass(format!("{:.2}", loads[index]))))
    })
}

#[cfg(target_os = "linux")]
fn read_load() -> Result<[f64; 3], String> {
    const PATH: &str = "/proc/loadavg";
    let text = std::fs::read_to_string(super::container::root().join("proc/loadavg"))
        .map_err(|e| format!("cannot read {PATH}: {}", super::io_reason(&e)))?;
    parse_loadavg(&text).ok_or_else(|| format!("cannot parse {PATH}: {:?}", text.trim()))
}

#[cfg(not(target_os = "linux"))]
fn read_load() -> Result<[f64; 3], String> {
    let mut loads = [0f64; 3];
    // SAFETY: getloadavg writes at most `nelem` doubles into the buffer we own.
    let n = unsafe { libc::getloadavg(loads.as_mut_ptr(), 3) };
    if n == 3 {
        Ok(loads)
    } else {
        Err("getloadavg() failed".to_string())
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
fn parse_loadavg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_ascii_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

/// `cpu_count()` → int
///
/// The CPUs this process may use: the CPU affinity mask and the cgroup CPU quota (v1 and v2)
/// are respected, so a pod limited to `500m` on a 64-core node sees 1, not 64.
fn cpu_count(host: &Host, ctx: &NativeCallContext) -> RhaiResult<INT> {
    host.local(ctx, &CPU_COUNT, "cpu_count()".into(), || {
        let n = std::thread::available_parallelism().map_err(|e| {
            HostError::Transport(format!("cannot determine the CPUs available: {e}"))
        })?;
        Ok((n.get() as INT, Outcome::Pass(n.to_string())))
    })
}

fn register_load_avg(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("load_avg", move |ctx: NativeCallContext| {
        load_avg(&h, &ctx, 1)
    });
    let h = host.clone();
    engine.register_fn("load_avg", move |ctx: NativeCallContext, minutes: INT| {
        load_avg(&h, &ctx, minutes)
    });
}

fn register_cpu_count(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("cpu_count", move |ctx: NativeCallContext| {
        cpu_count(&h, &ctx)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_loadavg() {
        assert_eq!(
            parse_loadavg("0.52 1.10 2.00 1/234 5678\n"),
            Some([0.52, 1.10, 2.00])
        );
        assert_eq!(parse_loadavg(""), None);
        assert_eq!(parse_loadavg("x y z"), None);
    }
}

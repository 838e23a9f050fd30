//! `process_running(name)`, `process_count(name)`: is the app's process there? The article's
//! chaos test stops Apache inside the container; with `shareProcessNamespace` a sidecar sees the
//! app's processes too.
//!
//! Reads `/proc/<pid>/stat` (and `cmdline` where needed) for each process once: in a container's
//! PID namespace that is a handful of small files, not a system scan.

use std::{path::Path, rc::Rc};

use rhai::{Dynamic, Engine, Map, NativeCallContext, INT};

use super::{
    container::root,
    decl::{Fails, HostFn, Opt, OptType, Stub, Time},
    options::Options,
    Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[PROCESS_RUNNING, PROCESS_COUNT];

const FULL: Opt = Opt {
    key: "full",
    ty: OptType::Bool,
    default: "false",
    doc: "match a substring of the command line (as `pgrep -f`) instead of the executable name",
};

pub const PROCESS_RUNNING: HostFn = HostFn {
    name: "process_running",
    signatures: &[
        "process_running(name: string) -> bool",
        "process_running(name: string, options: map) -> bool",
    ],
    summary: "whether a process with this executable name (or, with #{full: true}, command-line text) runs",
    options: &[FULL],
    keys: &[],
    fails: Fails::Never,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_running,
};

pub const PROCESS_COUNT: HostFn = HostFn {
    name: "process_count",
    signatures: &[
        "process_count(name: string) -> int",
        "process_count(name: string, options: map) -> int",
    ],
    summary:
        "how many processes have this executable name (or, with #{full: true}, command-line text)",
    options: &[FULL],
    keys: &[],
    fails: Fails::Never,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "2",
        failing: "0",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_count,
};

/// The kernel keeps only this much of a process name in `comm`.
const COMM_MAX: usize = 15;

/// Live processes matching `name`: by executable name (`comm`, or the base name of argv[0] for
/// names longer than `comm` keeps), or with `full` by a substring of the command line, as
/// `pgrep -f`. Zombies and this probe itself are not counted.
pub fn count(proc_dir: &Path, name: &str, full: bool) -> usize {
    let me = std::process::id().to_string();
    let Ok(entries) = std::fs::read_dir(proc_dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| {
            let pid = e.file_name();
            let pid = pid.to_string_lossy();
            pid.bytes().all(|b| b.is_ascii_digit()) && pid != me
        })
        .filter(|e| {
            let dir = e.path();
            let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
                return false;
            };
            // "1234 (comm with spaces) S ...": comm is between the first '(' and the last ')'.
            let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
                return false;
            };
            let comm = &stat[open + 1..close];
            let state = stat[close + 1..].split_whitespace().next().unwrap_or("");
            if state == "Z" || state == "X" {
                return false;
            }
            let cmdline = || {
                std::fs::read(dir.join("cmdline"))
                    .map(|raw| {
                        raw.split(|b| *b == 0)
                            .filter(|a| !a.is_empty())
                            .map(|a| String::from_utf8_lossy(a).into_owned())
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            };
            if full {
                return cmdline().join(" ").contains(name);
            }
            if name.len() < COMM_MAX {
                return comm == name;
            }
            // comm holds 15 characters: one that long may be cut from a longer name, so the
            // base name of argv[0] decides (when the process has one).
            comm == truncate(name)
                && cmdline()
                    .first()
                    .and_then(|argv0| argv0.rsplit('/').next().map(str::to_string))
                    .is_none_or(|base| base == name)
        })
        .count()
}

fn truncate(name: &str) -> &str {
    let mut end = COMM_MAX.min(name.len());
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn matching(
    host: &Host,
    ctx: &NativeCallContext,
    f: &'static HostFn,
    name: &str,
    options: Options,
) -> RhaiResult<usize> {
    let function = f.name;
    if name.is_empty() {
        return Err(HostError::Fault("the name is empty".into()).into_fault(function, ctx));
    }
    let full = options
        .bool("full")
        .map_err(|e| e.into_fault(function, ctx))?
        .unwrap_or(false);
    let what = if full {
        format!("{function}({name:?}, full)")
    } else {
        format!("{function}({name:?})")
    };
    let name = name.to_string();
    host.local(ctx, f, what, move || {
        let n = count(&root().join("proc"), &name, full);
        let outcome = if n == 0 {
            Outcome::Fail("none".into())
        } else {
            Outcome::Pass(n.to_string())
        };
        Ok((n, outcome))
    })
}

fn register_running(engine: &mut Engine, host: &Rc<Host>) {
    register_matching(engine, host, &PROCESS_RUNNING, |n| Dynamic::from(n > 0));
}

fn register_count(engine: &mut Engine, host: &Rc<Host>) {
    register_matching(engine, host, &PROCESS_COUNT, |n| Dynamic::from(n as INT));
}

fn register_matching(
    engine: &mut Engine,
    host: &Rc<Host>,
    f: &'static HostFn,
    answer: fn(usize) -> Dynamic,
) {
    let h = host.clone();
    engine.register_fn(f.name, move |ctx: NativeCallContext, name: &str| {
        matching(&h, &ctx, f, name, Options::none()).map(answer)
    });
    let h = host.clone();
    engine.register_fn(
        f.name,
        move |ctx: NativeCallContext, name: &str, options: Map| {
            let options = Options::new(&options, f).map_err(|e| e.into_fault(f.name, &ctx))?;
            matching(&h, &ctx, f, name, options).map(answer)
        },
    );
}

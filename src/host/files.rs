//! Disk space and files: `disk_usage(path)`, `file_exists(path)`, `file_age(path)` (the
//! heartbeat-file liveness pattern: the app touches a file, the probe checks it is recent).

use std::{ffi::CString, path::Path, rc::Rc, time::SystemTime};

use rhai::{Dynamic, Engine, Map, NativeCallContext, FLOAT, INT};

use super::{
    decl::{unit_key as key, Fails, HostFn, Stub, Time, Type},
    io_reason, result_map, Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[DISK_USAGE, FILE_EXISTS, FILE_AGE];


pub const DISK_USAGE: HostFn = HostFn {
    name: "disk_usage",
    signatures: &["disk_usage(path: string) -> map"],
    summary: "the filesystem holding path: #{total, free, available, used_pct, inodes_free}",
    options: &[],
    keys: &[
        key("total", Type::Int, "bytes"),
        key("free", Type::Int, "bytes free, root's reserve included"),
        key("available", Type::Int, "bytes a non-root writer can still use"),
        key("used_pct", Type::Float, "used / (used + available), as `df` shows it"),
        key("inodes_free", Type::Int, "free inodes"),
    ],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "{ used_pct = 40.0, inodes_free = 100000 }",
        failing: "{ used_pct = 99.0, inodes_free = 0 }",
    },
    reach: crate::host::decl::Reach::Path(0),
    register: register_disk_usage,
};

pub const FILE_EXISTS: HostFn = HostFn {
    name: "file_exists",
    signatures: &["file_exists(path: string) -> bool"],
    summary: "whether path exists (a file, a directory, anything)",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    reach: crate::host::decl::Reach::Path(0),
    register: register_file_exists,
};

pub const FILE_AGE: HostFn = HostFn {
    name: "file_age",
    signatures: &["file_age(path: string) -> float"],
    summary: "seconds since path was last modified (a heartbeat file); throws when it is missing",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "5.0",
        failing: "3600.0",
    },
    reach: crate::host::decl::Reach::Path(0),
    register: register_file_age,
};

fn non_empty(function: &str, ctx: &NativeCallContext, path: &str) -> RhaiResult<()> {
    if path.is_empty() {
        return Err(HostError::Fault("path is empty".into()).into_fault(function, ctx));
    }
    Ok(())
}

fn disk_usage(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<Dynamic> {
    non_empty("disk_usage", ctx, path)?;
    let owned = path.to_string();
    let (total, free, available, inodes_free, used_pct) = host.local(
        ctx,
        &DISK_USAGE,
        format!("disk_usage({path})"),
        move || {
            let path = owned;
            crate::permissions::read(Path::new(&path)).map_err(HostError::Denied)?;
            let c_path = CString::new(path.as_str())
                .map_err(|_| HostError::Fault(format!("{path:?} contains a NUL byte")))?;
            // SAFETY: statvfs writes into the struct we own; the path is a valid C string.
            let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) } != 0 {
                return Err(HostError::Transport(io_reason(
                    &std::io::Error::last_os_error(),
                )));
            }
            let unit = stat.f_frsize as u64;
            let total = stat.f_blocks as u64 * unit;
            let free = stat.f_bfree as u64 * unit;
            let available = stat.f_bavail as u64 * unit;
            // As df: used / (used + available), what a non-root writer can still use.
            let used = total.saturating_sub(free);
            let used_pct = if used + available == 0 {
                0.0
            } else {
                used as FLOAT / (used + available) as FLOAT * 100.0
            };
            let facts = (total, free, available, stat.f_ffree as u64, used_pct);
            Ok((facts, Outcome::Pass(format!("{used_pct:.1}% used"))))
        },
    )?;
    let mut map = Map::new();
    map.insert("total".into(), Dynamic::from(total as INT));
    map.insert("free".into(), Dynamic::from(free as INT));
    map.insert("available".into(), Dynamic::from(available as INT));
    map.insert("used_pct".into(), Dynamic::from_float(used_pct));
    map.insert("inodes_free".into(), Dynamic::from(inodes_free as INT));
    Ok(result_map(&DISK_USAGE, map))
}

fn file_exists(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<bool> {
    non_empty("file_exists", ctx, path)?;
    let owned = path.to_string();
    host.local(
        ctx,
        &FILE_EXISTS,
        format!("file_exists({path})"),
        move || {
            crate::permissions::read(Path::new(&owned)).map_err(HostError::Denied)?;
            match std::fs::symlink_metadata(owned) {
                Ok(_) => Ok((true, Outcome::Pass("true".into()))),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    Ok((false, Outcome::Fail("false".into())))
                }
                // Permission denied on a parent: we cannot tell, and must not guess.
                Err(e) => Err(HostError::Transport(io_reason(&e))),
            }
        },
    )
}

fn file_age(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<FLOAT> {
    non_empty("file_age", ctx, path)?;
    let owned = path.to_string();
    host.local(ctx, &FILE_AGE, format!("file_age({path})"), move || {
        crate::permissions::read(Path::new(&owned)).map_err(HostError::Denied)?;
        let modified = std::fs::metadata(owned)
            .and_then(|m| m.modified())
            .map_err(|e| HostError::Transport(io_reason(&e)))?;
        // A file from the future (clock skew) is 0 seconds old, not negative.
        let age = SystemTime::now()
            .duration_since(modified)
            .map_or(0.0, |d| d.as_secs_f64());
        Ok((age, Outcome::Pass(format!("{age:.1} s"))))
    })
}

fn register_disk_usage(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("disk_usage", move |ctx: NativeCallContext, path: &str| {
        disk_usage(&h, &ctx, path)
    });
}

fn register_file_exists(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("file_exists", move |ctx: NativeCallContext, path: &str| {
        file_exists(&h, &ctx, path)
    });
}

fn register_file_age(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("file_age", move |ctx: NativeCallContext, path: &str| {
        file_age(&h, &ctx, path)
    });
}

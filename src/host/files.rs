//! Disk space and files: `disk_usage(path)`, `file_exists(path)`, `file_age(path)` (the
//! heartbeat-file liveness pattern: the app touches a file, the probe checks it is recent).

use std::{ffi::CString, rc::Rc, time::SystemTime};

use rhai::{Dynamic, Engine, Map, NativeCallContext, FLOAT, INT};

use super::{io_reason, FnDoc, Host, HostError, RhaiResult};
use crate::trace::Outcome;

pub const DOC_DISK_USAGE: FnDoc = FnDoc {
    name: "disk_usage",
    signatures: &["disk_usage(path: string) -> map"],
    summary: "the filesystem holding path: #{total, free, available, used_pct, inodes_free}",
};

pub const DOC_FILE_EXISTS: FnDoc = FnDoc {
    name: "file_exists",
    signatures: &["file_exists(path: string) -> bool"],
    summary: "whether path exists (a file, a directory, anything)",
};

pub const DOC_FILE_AGE: FnDoc = FnDoc {
    name: "file_age",
    signatures: &["file_age(path: string) -> float"],
    summary: "seconds since path was last modified (a heartbeat file); throws when it is missing",
};

fn non_empty(function: &str, ctx: &NativeCallContext, path: &str) -> RhaiResult<()> {
    if path.is_empty() {
        return Err(HostError::Fault("path is empty".into()).into_fault(function, ctx));
    }
    Ok(())
}

fn disk_usage(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<Map> {
    non_empty("disk_usage", ctx, path)?;
    host.call(
        ctx,
        "disk_usage",
        format!("disk_usage({path})"),
        None,
        |_| {
            let c_path = CString::new(path)
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
            let mut map = Map::new();
            map.insert("total".into(), Dynamic::from(total as INT));
            map.insert("free".into(), Dynamic::from(free as INT));
            map.insert("available".into(), Dynamic::from(available as INT));
            map.insert("used_pct".into(), Dynamic::from_float(used_pct));
            map.insert("inodes_free".into(), Dynamic::from(stat.f_ffree as INT));
            Ok((map, Outcome::Pass(format!("{used_pct:.1}% used"))))
        },
    )
}

fn file_exists(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<bool> {
    non_empty("file_exists", ctx, path)?;
    host.call(
        ctx,
        "file_exists",
        format!("file_exists({path})"),
        None,
        |_| {
            match std::fs::symlink_metadata(path) {
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
    host.call(ctx, "file_age", format!("file_age({path})"), None, |_| {
        let modified = std::fs::metadata(path)
            .and_then(|m| m.modified())
            .map_err(|e| HostError::Transport(io_reason(&e)))?;
        // A file from the future (clock skew) is 0 seconds old, not negative.
        let age = SystemTime::now()
            .duration_since(modified)
            .map_or(0.0, |d| d.as_secs_f64());
        Ok((age, Outcome::Pass(format!("{age:.1} s"))))
    })
}

pub fn register(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("disk_usage", move |ctx: NativeCallContext, path: &str| {
        disk_usage(&h, &ctx, path)
    });
    let h = host.clone();
    engine.register_fn("file_exists", move |ctx: NativeCallContext, path: &str| {
        file_exists(&h, &ctx, path)
    });
    let h = host.clone();
    engine.register_fn("file_age", move |ctx: NativeCallContext, path: &str| {
        file_age(&h, &ctx, path)
    });
}

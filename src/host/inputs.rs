//! What a probe reads from its pod rather than from its script: environment variables and
//! mounted files (a DSN from a Secret via `secretKeyRef`, a token file). Values that look secret
//! are remembered by `redact`, so that no later output can show them.

use std::{
    io::Read,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    rc::Rc,
};

use rhai::{Dynamic, Engine, NativeCallContext};

use super::{
    decl::{Fails, HostFn, Stub, Time},
    Host, HostError, RhaiResult,
};
use crate::{redact, trace::Outcome};

pub const FUNCTIONS: &[HostFn] = &[ENV, READ_FILE];

pub const ENV: HostFn = HostFn {
    name: "env",
    signatures: &[
        "env(name: string) -> string",
        "env(name: string, default: any) -> any",
    ],
    summary: "an environment variable of the probe (a script fault when unset and no default)",
    options: &[],
    keys: &[],
    fails: Fails::Never,
    time: Time::Pure,
    secrets: &[],
    stub: Stub::Answer {
        example: "\"value\"",
        failing: "\"\"",
    },
    reach: crate::host::decl::Reach::Env(0),
    register: register_env,
};

pub const READ_FILE: HostFn = HostFn {
    name: "read_file",
    signatures: &["read_file(path: string) -> string"],
    summary: "a small text file (≤ 64 KiB, one trailing newline dropped), e.g. a mounted Secret",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "\"postgres://app:secret@db:5432/app\"",
        failing: "\"\"",
    },
    reach: crate::host::decl::Reach::Path(0),
    register: register_read_file,
};

/// The most `read_file` reads: enough for any DSN, token or small config, never a log file.
pub const READ_FILE_MAX: u64 = 64 * 1024;

/// Treat `value` as secret if its name says so, and mask any URL password inside it.
fn remember_secrets(name: &str, value: &str) {
    if redact::sensitive_name(name) {
        redact::remember(value);
    }
    if value.contains("://") {
        let _ = redact::mask_url(value);
    }
    if value.contains("password=") {
        let _ = super::sql::dsn::mask(value);
    }
}

fn env(
    host: &Host,
    ctx: &NativeCallContext,
    name: &str,
    default: Option<Dynamic>,
) -> RhaiResult<Dynamic> {
    if name.is_empty() || name.contains('=') || name.contains('\0') {
        let message = format!("{name:?} is not a variable name");
        return Err(HostError::Fault(message).into_fault("env", ctx));
    }
    host.call(
        ctx,
        &ENV,
        &[],
        format!("${name}"),
        None,
        |_| match crate::permissions::env(name)
            .map_err(HostError::Denied)
            .map(|()| std::env::var(name))?
        {
            Ok(value) => {
                remember_secrets(name, &value);
                Ok((value.into(), Outcome::Pass("set".into())))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(HostError::Fault(format!("${name} is not valid UTF-8")))
            }
            Err(std::env::VarError::NotPresent) => match default {
                Some(default) => Ok((default, Outcome::Pass("not set, default used".into()))),
                None => Err(HostError::Fault(format!(
                    "${name} is not set in the probe's environment; set it on the container \
                     (env, envFrom or a secretKeyRef), or give a default: `env({name:?}, DEFAULT)`"
                ))),
            },
        },
    )
}

fn read_file(host: &Host, ctx: &NativeCallContext, path: &str) -> RhaiResult<String> {
    if path.is_empty() {
        return Err(HostError::Fault("path is empty".into()).into_fault("read_file", ctx));
    }
    let path = path.to_string();
    host.local(ctx, &READ_FILE, format!("read_file({path})"), move || {
        let path = path.as_str();
        crate::permissions::read(std::path::Path::new(path)).map_err(HostError::Denied)?;
        // O_NONBLOCK: opening a FIFO with no writer would otherwise block past the deadline
        // (only run's watchdog could end it; serve has none). Regular files ignore the flag.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| HostError::Transport(super::io_reason(&e)))?;
        let kind = file
            .metadata()
            .map_err(|e| HostError::Transport(super::io_reason(&e)))?
            .file_type();
        if !kind.is_file() {
            let what = if kind.is_fifo() {
                "a FIFO"
            } else if kind.is_char_device() || kind.is_block_device() {
                "a device"
            } else if kind.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(HostError::Fault(format!(
                "{path} is {what}; read_file reads regular files such as a mounted Secret's key"
            )));
        }
        let mut bytes = Vec::new();
        file.take(READ_FILE_MAX + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| HostError::Transport(super::io_reason(&e)))?;
        if bytes.len() as u64 > READ_FILE_MAX {
            return Err(HostError::Fault(format!(
                "{path} is larger than {} KiB; read_file is for small values such as a DSN or a token",
                READ_FILE_MAX / 1024
            )));
        }
        let mut text = String::from_utf8(bytes)
            .map_err(|_| HostError::Fault(format!("{path} is not UTF-8 text")))?;
        if text.ends_with('\n') {
            text.pop();
            if text.ends_with('\r') {
                text.pop();
            }
        }
        remember_secrets(path, &text);
        let size = text.len();
        Ok((text, Outcome::Pass(format!("{size} bytes"))))
    })
}

fn register_env(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("env", move |ctx: NativeCallContext, name: &str| {
        env(&h, &ctx, name, None)
    });
    let h = host.clone();
    engine.register_fn(
        "env",
        move |ctx: NativeCallContext, name: &str, default: Dynamic| {
            env(&h, &ctx, name, Some(default))
        },
    );
}

fn register_read_file(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("read_file", move |ctx: NativeCallContext, path: &str| {
        read_file(&h, &ctx, path)
    });
}

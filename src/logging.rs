//! Where log records go: stderr and, with `--log-file`, a file opened for append.
//!
//! The two have their own levels. stderr ends up in kubelet's event for a failed probe next to
//! the verdict line, so by default it carries warnings only; the log file (typically
//! `/proc/1/fd/1`, the pod's `kubectl logs`) gets every host call, as the Python probes this
//! replaces did. Both are capped per run so that a chatty script cannot flood either.
//! `RUST_LOG` overrides both filters.

use std::{
    fs::{File, OpenOptions},
    io::Write,
    path::Path,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Mutex,
    },
    time::SystemTime,
};

use env_filter::{Builder, Filter};
use log::{LevelFilter, Log, Metadata, Record};

use crate::{cli::LogArgs, redact};

/// Bytes of log output per run on stderr: kubelet keeps 10 KiB of a failed probe's output.
const STDERR_BYTES: usize = 6 * 1024;
const FILE_BYTES: usize = 64 * 1024;

/// Records with this target (the verdict line) go to the log file only: stdout has it already.
pub const VERDICT: &str = "verdict";

struct Sink<W> {
    filter: Filter,
    out: W,
    written: AtomicUsize,
    cap: usize,
}

impl<W> Sink<W> {
    /// Reserve room for `len` bytes; `None` when the cap is reached (once, with a note to write).
    fn admit(&self, len: usize) -> Option<bool> {
        let before = self.written.fetch_add(len, Ordering::Relaxed);
        if before + len <= self.cap {
            Some(false)
        } else if before <= self.cap {
            Some(true)
        } else {
            None
        }
    }
}

struct Logger {
    stderr: Sink<std::io::Stderr>,
    file: Option<Sink<Mutex<File>>>,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        self.stderr.filter.enabled(metadata)
            || self
                .file
                .as_ref()
                .is_some_and(|f| f.filter.enabled(metadata))
    }

    fn log(&self, record: &Record) {
        let to_stderr = record.target() != VERDICT && self.stderr.filter.matches(record);
        let file = self.file.as_ref().filter(|f| f.filter.matches(record));
        if !to_stderr && file.is_none() {
            return;
        }
        let text = record.args().to_string();
        let line = format!(
            "{} rhai-probe {:<5} {}\n",
            timestamp(SystemTime::now()),
            record.level(),
            redact::scrub(&text)
        );
        if to_stderr {
            write_capped(&self.stderr, &line, |line| {
                let _ = self.stderr.out.lock().write_all(line.as_bytes());
            });
        }
        if let Some(file) = file {
            write_capped(file, &line, |line| {
                if let Ok(mut f) = file.out.lock() {
                    // One write per record: appends from several processes (every probe run
                    // shares /proc/1/fd/1) do not interleave within a line.
                    let _ = f.write_all(line.as_bytes());
                }
            });
        }
    }

    fn flush(&self) {}
}

fn write_capped<W>(sink: &Sink<W>, line: &str, write: impl Fn(&str)) {
    match sink.admit(line.len()) {
        Some(false) => write(line),
        Some(true) => write(&format!(
            "{} rhai-probe WARN  further log output dropped (limit {} bytes per run)\n",
            timestamp(SystemTime::now()),
            sink.cap
        )),
        None => {}
    }
}

/// How much to say on stderr: `-q` → errors, default → warnings, `-v` → info, `-vv` → debug.
pub fn init(args: &LogArgs) {
    install(args.quiet, args.verbose, args.log_file.as_deref(), false);
}

/// `serve`: the same sinks, levels and scrubbing, but no per-run caps (a long-lived process has
/// no run to cap; each evaluation's `print` output is still capped by the engine), and the
/// server's own events (listening, verdict changes, reloads) at info by default: they are what
/// the sidecar's `kubectl logs` is for. Host calls stay at -v, as in `run`.
pub fn init_serve(args: &LogArgs) {
    install(args.quiet, args.verbose, args.log_file.as_deref(), true);
}

/// Records the server logs at info even without -v.
pub const SERVE: &str = "rhai_probe::serve";

fn install(quiet: bool, verbose: u8, log_file: Option<&Path>, serve: bool) {
    let rust_log = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty());
    let ours = module_path!().split("::").next().unwrap_or("rhai_probe");
    let mut bad_rust_log = None;
    let mut filter = |level: LevelFilter| -> Filter {
        let mut b = Builder::new();
        if let Some(spec) = &rust_log {
            match b.try_parse(spec) {
                Ok(_) => return b.build(),
                Err(e) => bad_rust_log = Some(format!("ignoring RUST_LOG={spec:?}: {e}")),
            }
        }
        // Only this crate's records: the HTTP and TLS crates' debug output is not for users.
        b.filter_module(ours, level).filter_module(VERDICT, level);
        if serve && !quiet {
            b.filter_module(SERVE, level.max(LevelFilter::Info));
        }
        b.build()
    };
    let stderr_level = match (quiet, verbose) {
        (true, _) => LevelFilter::Error,
        (false, 0) => LevelFilter::Warn,
        (false, 1) => LevelFilter::Info,
        _ => LevelFilter::Debug,
    };
    let file_level = stderr_level.max(LevelFilter::Info);

    let mut opened = None;
    let mut open_error = None;
    if let Some(path) = log_file {
        // Append, never truncate: /proc/1/fd/1 is the main process's stdout, and other probe
        // runs write there too. O_NONBLOCK: a FIFO (a sidecar's log, docs/kubernetes.md) with
        // no reader fails at once instead of blocking the probe past its deadline, and a full
        // one drops a record rather than waiting; regular files ignore the flag.
        use std::os::unix::fs::OpenOptionsExt;
        match OpenOptions::new()
            .append(true)
            .create(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
        {
            Ok(f) => opened = Some(f),
            Err(e) => {
                open_error = Some(format!(
                    "cannot open --log-file {}: {}; logging to stderr only",
                    crate::redact::path(path),
                    crate::host::io_reason(&e)
                ))
            }
        }
    }
    let logger = Logger {
        stderr: Sink {
            filter: filter(stderr_level),
            out: std::io::stderr(),
            written: AtomicUsize::new(0),
            cap: if serve { usize::MAX } else { STDERR_BYTES },
        },
        file: opened.map(|f| Sink {
            filter: filter(file_level),
            out: Mutex::new(f),
            written: AtomicUsize::new(0),
            cap: if serve { usize::MAX } else { FILE_BYTES },
        }),
    };
    let max = logger.stderr.filter.filter().max(
        logger
            .file
            .as_ref()
            .map_or(LevelFilter::Off, |f| f.filter.filter()),
    );
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
    // A probe must not fail because its log file is missing: that would restart a healthy pod.
    for message in [open_error, bad_rust_log].into_iter().flatten() {
        log::warn!("{message}");
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T17:23:34.123Z`.
pub fn timestamp(now: SystemTime) -> String {
    let since = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    rfc3339(since.as_secs(), Some(since.subsec_millis()))
}

/// Seconds since the epoch as RFC 3339 UTC: `2027-03-01T12:00:00Z`, or with milliseconds.
pub fn rfc3339(secs: u64, millis: Option<u32>) -> String {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let fraction = millis.map(|m| format!(".{m:03}")).unwrap_or_default();
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{fraction}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let at = |s: u64, ms: u64| {
            timestamp(SystemTime::UNIX_EPOCH + Duration::from_millis(s * 1000 + ms))
        };
        assert_eq!(at(0, 0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(951_782_400, 5), "2000-02-29T00:00:00.005Z");
        assert_eq!(at(1_795_627_414, 123), "2026-11-25T17:23:34.123Z");
    }

    #[test]
    fn sink_caps_output_and_notes_it_once() {
        let sink = Sink {
            filter: Builder::new().build(),
            out: (),
            written: AtomicUsize::new(0),
            cap: 10,
        };
        assert_eq!(sink.admit(6), Some(false));
        assert_eq!(sink.admit(6), Some(true));
        assert_eq!(sink.admit(6), None);
    }
}

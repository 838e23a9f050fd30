//! State across runs of one probe: what kubelet's `failureThreshold` cannot say ("failing for 3
//! minutes", "3 failures in 5 minutes", "the error counter grows").
//!
//! A probe's state is one small JSON file in `--state-dir`, named after the probe (its script
//! path as given, so a ConfigMap's `..data` swap keeps it), so liveness and readiness never share
//! one. A run that uses state takes an exclusive lock on `FILE.lock` (waiting a bounded time
//! inside its deadline), reads the file, and at the end writes a temporary file and renames it
//! over: a crash mid-write leaves the old file, never a torn one. A file that is corrupt, from
//! another program or from a future version is reset with one warning.
//!
//! Times are read from `CLOCK_BOOTTIME`, which a wall-clock jump (NTP, a manual `date`) does not
//! move and which counts on through a suspend. A state belongs to one container's life: it
//! carries the boot's id and PID 1's start time, and a file written by another life (a restarted
//! container whose emptyDir survived) starts over, so an old failure streak never restarts the
//! new container.
//!
//! `serve` and `wait` keep the same state in memory, per probe; `test` starts each case from the
//! state it gives, at a fixed clock.

use std::{
    cell::RefCell,
    collections::{BTreeMap, VecDeque},
    fs,
    io::{self, Write},
    os::unix::io::AsRawFd,
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use serde_json::{Map, Value};

/// The file format; another number is a file this version does not read (reset with a warning).
pub const VERSION: u32 = 2;
/// Verdicts kept for `history()`.
pub const HISTORY: usize = 20;
/// The largest value `remember` keeps, as JSON.
pub const MAX_VALUE_BYTES: usize = 4096;
/// Names per kind (checks, rates, remembered values): a script that makes names up in a loop
/// would otherwise grow its file without end.
pub const MAX_NAMES: usize = 64;
/// The longest name of a check, rate or value.
pub const MAX_NAME: usize = 128;
/// A state file larger than this is not read (reset with a warning).
const MAX_FILE_BYTES: u64 = 1 << 20;
/// The longest wait for another run of the same probe to release the lock.
const MAX_LOCK_WAIT: Duration = Duration::from_millis(500);
/// A history entry's reason is cut to this many characters.
const MAX_REASON: usize = 200;

/// Everything one probe remembers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    pub version: u32,
    /// The container life it belongs to ([`identity`]).
    pub identity: String,
    pub checks: BTreeMap<String, CheckState>,
    pub rates: BTreeMap<String, Sample>,
    pub memory: BTreeMap<String, serde_json::Value>,
    /// The last verdicts, oldest first.
    pub history: VecDeque<Entry>,
}

/// A named check's failures, in clock seconds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CheckState {
    /// When its current streak of failures began (`grace`); `None` while it passes.
    pub failing_since: Option<f64>,
    /// When it failed, the latest last (`failures` within `within`).
    pub failures: Vec<f64>,
}

/// The value `rate` saw last, and when.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    pub value: f64,
    pub at: f64,
}

/// One run's verdict.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Entry {
    /// Clock seconds.
    pub at: f64,
    /// Unix seconds, for showing.
    pub wall: u64,
    pub exit: u8,
    pub reason: String,
}

/// Seconds on a clock that wall-clock jumps do not move, shared by every process of one boot.
pub fn clock() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// This container's life: the boot and PID 1's start time (a restarted container has a new PID
/// 1; in a pod with `shareProcessNamespace` PID 1 is the pod's, and state then lives as long as
/// the pod).
pub fn identity() -> String {
    let boot = read_small("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    // Field 22 of /proc/1/stat, counted after the command name (which may hold spaces).
    let started = read_small("/proc/1/stat")
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1;
            rest.split_whitespace().nth(19).map(str::to_string)
        })
        .unwrap_or_default();
    format!("boot {boot}, pid 1 started at tick {started}")
}

/// A small /proc file in one read (procfs gives the whole of such a file to one large enough
/// read): open, read, close, where `fs::read_to_string` also asks its size and reads on to the
/// end. A file that fills the buffer is not trusted to be whole.
fn read_small(path: &str) -> Option<String> {
    let mut buf = [0u8; 1024];
    let n = io::Read::read(&mut fs::File::open(path).ok()?, &mut buf).ok()?;
    if n == buf.len() {
        return None;
    }
    String::from_utf8(buf[..n].to_vec()).ok()
}

/// Where a probe's state is kept.
#[derive(Clone, Debug, Default)]
pub enum Store {
    /// No `--state-dir`: a script that uses state is at fault.
    #[default]
    Off,
    /// A file in this directory.
    Dir(PathBuf),
    /// In this process (`serve`, `wait`): one per probe, shared by its runs.
    Memory(Rc<RefCell<Option<State>>>),
    /// `test`: a case's prior state, at a fixed clock.
    Given(Box<State>),
}

/// The clock a `test` case runs at: any fixed point, so that a case's "2m50s ago" is exact.
pub const CASE_CLOCK: f64 = 1_000_000.0;

/// One run's use of the state.
#[derive(Debug, Default)]
pub struct Session {
    store: Store,
    /// The probe's name, for the file's.
    key: String,
    pub now: f64,
    phase: Phase,
    /// What was read and written, for `explain` and JSON output.
    pub notes: Vec<String>,
}

#[derive(Debug, Default)]
enum Phase {
    #[default]
    Unread,
    Ready {
        state: State,
        file: Option<(PathBuf, fs::File)>,
    },
    /// Why this run keeps no state (a read-only directory, a lock held too long).
    Unavailable(String),
}

/// The hint of every "no state" fault.
pub const NEEDS_DIR: &str = "keeps state across runs: give --state-dir DIR (or RHAI_PROBE_STATE_DIR; in a pod an emptyDir volume, see docs/state.md)";

impl Session {
    pub fn new(store: Store, key: &str) -> Session {
        let now = match store {
            Store::Given(_) => CASE_CLOCK,
            _ => clock(),
        };
        Session {
            store,
            key: key.to_string(),
            now,
            phase: Phase::Unread,
            notes: Vec::new(),
        }
    }

    /// Whether state is kept anywhere (else a script that uses it is at fault).
    pub fn is_off(&self) -> bool {
        matches!(self.store, Store::Off)
    }

    /// Read the state now, if the script may use it: every run of a probe that keeps state then
    /// takes its turn and is recorded in its history, even one that fails before its first
    /// state call. `text` is the script's.
    pub fn prepare(&mut self, text: &str, time_left: Duration) {
        if !self.is_off() && mentions_state(text) {
            let _ = self.state(time_left);
        }
    }

    /// The state to read and change; `Err` with the fault's hint when none is kept, `Ok(None)`
    /// when this run cannot have it (the reason goes into the verdict line).
    pub fn state(&mut self, time_left: Duration) -> Result<Option<&mut State>, &'static str> {
        if self.is_off() {
            return Err(NEEDS_DIR);
        }
        if matches!(self.phase, Phase::Unread) {
            self.phase = self.load(time_left);
        }
        match &mut self.phase {
            Phase::Ready { state, .. } => Ok(Some(state)),
            _ => Ok(None),
        }
    }

    fn load(&mut self, time_left: Duration) -> Phase {
        let fresh = || State {
            version: VERSION,
            identity: identity(),
            ..State::default()
        };
        match &self.store {
            Store::Off => Phase::Unread,
            Store::Given(state) => {
                self.notes
                    .push(format!("given by the case: {}", summary(state, self.now)));
                Phase::Ready {
                    state: (**state).clone(),
                    file: None,
                }
            }
            Store::Memory(cell) => {
                let state = cell.borrow_mut().take().unwrap_or_else(fresh);
                self.notes
                    .push(format!("in memory: {}", summary(&state, self.now)));
                Phase::Ready { state, file: None }
            }
            Store::Dir(dir) => {
                let path = dir.join(file_name(&self.key));
                match lock_and_read(&path, time_left) {
                    Ok((lock, read)) => {
                        let shown = crate::redact::path(&path);
                        let state = match read {
                            Read::Missing => {
                                self.notes.push(format!("{shown}: new"));
                                fresh()
                            }
                            Read::State(state) if state.identity == identity() => {
                                self.notes
                                    .push(format!("read {shown}: {}", summary(&state, self.now)));
                                *state
                            }
                            Read::State(_) => {
                                log::info!("{shown}: written by an earlier container (a restart): starting over");
                                self.notes.push(format!(
                                    "{shown}: from an earlier container life: starting over"
                                ));
                                fresh()
                            }
                            Read::Unusable(why) => {
                                log::warn!("{shown}: {why}: starting over");
                                self.notes.push(format!("{shown}: {why}: starting over"));
                                fresh()
                            }
                        };
                        Phase::Ready {
                            state,
                            file: Some((path, lock)),
                        }
                    }
                    Err(why) => {
                        self.notes.push(format!("not kept: {why}"));
                        Phase::Unavailable(why)
                    }
                }
            }
        }
    }

    /// The run is over: add its verdict to the history and keep the state (write the file,
    /// release the lock). Returns what the verdict line must add: why no state was kept.
    pub fn finish(&mut self, exit: u8, reason: &str) -> Option<String> {
        let phase = std::mem::take(&mut self.phase);
        match phase {
            Phase::Unread => None,
            Phase::Unavailable(why) => Some(format!("state not kept: {why}; judged without it")),
            Phase::Ready { mut state, file } => {
                let wall = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                state.history.push_back(Entry {
                    at: self.now,
                    wall,
                    exit,
                    reason: crate::redact::scrub(&cut(reason, MAX_REASON)).into_owned(),
                });
                while state.history.len() > HISTORY {
                    state.history.pop_front();
                }
                match (&self.store, file) {
                    (Store::Memory(cell), _) => {
                        *cell.borrow_mut() = Some(state);
                        None
                    }
                    (_, Some((path, lock))) => {
                        let written = write(&path, &state);
                        drop(lock);
                        let shown = crate::redact::path(&path);
                        match written {
                            Ok(()) => {
                                self.notes
                                    .push(format!("wrote {shown}: {}", summary(&state, self.now)));
                                None
                            }
                            Err(e) => {
                                let why = format!("{shown}: {}", crate::host::io_reason(&e));
                                log::error!("cannot write the state: {why}");
                                self.notes.push(format!("not written: {why}"));
                                Some(format!("state not saved: {why}"))
                            }
                        }
                    }
                    _ => {
                        self.notes
                            .push(format!("would keep: {}", summary(&state, self.now)));
                        None
                    }
                }
            }
        }
    }
}

/// Whether a script's text may use state (a cheap look, before it runs): a rule's option key,
/// a state function's name, or `Fn`, through which a function can be named at run time (as
/// `engine::for_script` assumes too).
pub fn mentions_state(text: &str) -> bool {
    [
        "grace",
        "within",
        "rate(",
        "remember(",
        "recall(",
        "history(",
        "Fn",
    ]
    .iter()
    .any(|word| text.contains(word))
}

/// `state: 2 checks, 1 rate, 3 values, 5 verdicts`.
fn summary(state: &State, now: f64) -> String {
    let mut parts = Vec::new();
    for (name, c) in &state.checks {
        match (c.failing_since, c.failures.len()) {
            (Some(_), _) | (_, 1..) => parts.push(format!(
                "check {name:?}{}{}",
                c.failing_since
                    .map(|t| format!(" failing for {}", period_text((now - t).max(0.0))))
                    .unwrap_or_default(),
                if c.failures.is_empty() {
                    String::new()
                } else {
                    format!(" ({} failures kept)", c.failures.len())
                }
            )),
            _ => parts.push(format!("check {name:?} passing")),
        }
    }
    if !state.rates.is_empty() {
        parts.push(plural(state.rates.len(), "rate"));
    }
    if !state.memory.is_empty() {
        parts.push(plural(state.memory.len(), "remembered value"));
    }
    parts.push(plural(state.history.len(), "verdict"));
    parts.join(", ")
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text.to_string(),
    }
}

/// The file of a probe: its name's last part, readable, and a hash of the whole name so that
/// two probes of the same file name in different directories never share one.
pub fn file_name(key: &str) -> String {
    let base = key.rsplit('/').next().unwrap_or(key);
    let mut readable: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .take(60)
        .collect();
    if readable.is_empty() || readable.starts_with('.') {
        readable.insert(0, 'p');
    }
    // FNV-1a, 64 bits: stable across versions and platforms (unlike std's hasher).
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{readable}-{hash:016x}.state.json")
}

enum Read {
    Missing,
    State(Box<State>),
    /// Corrupt, foreign or from a future version: why.
    Unusable(String),
}

/// Take the probe's lock (waiting a bounded time for an overlapping run of it) and read its
/// file. `Err`: why this run keeps no state (the directory cannot be written, the lock stayed
/// held).
fn lock_and_read(path: &Path, time_left: Duration) -> Result<(fs::File, Read), String> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let lock_path = path.with_extension("json.lock");
    let open = || {
        fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
    };
    // The directory is made only when it is missing: one system call less on every run.
    let lock = match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| {
                format!(
                    "{}: {}",
                    crate::redact::path(dir),
                    crate::host::io_reason(&e)
                )
            })?;
            open()
        }
        other => other,
    }
    .map_err(|e| {
        format!(
            "{}: {}",
            crate::redact::path(&lock_path),
            crate::host::io_reason(&e)
        )
    })?;
    let bound = (time_left / 4).min(MAX_LOCK_WAIT);
    let started = Instant::now();
    loop {
        // SAFETY: flock on a descriptor this function owns.
        let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            break;
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EWOULDBLOCK) && e.kind() != io::ErrorKind::Interrupted {
            return Err(format!(
                "{}: {}",
                crate::redact::path(&lock_path),
                crate::host::io_reason(&e)
            ));
        }
        if started.elapsed() >= bound {
            return Err(format!(
                "another run of this probe held {} for {} (an overrunning run?)",
                crate::redact::path(&lock_path),
                crate::deadline::human(bound)
            ));
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let unreadable =
        |e: io::Error| Read::Unusable(format!("unreadable ({})", crate::host::io_reason(&e)));
    let read = match fs::File::open(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Read::Missing,
        Err(e) => unreadable(e),
        Ok(file) => {
            let mut bytes = Vec::with_capacity(4096);
            match io::Read::read_to_end(&mut io::Read::take(file, MAX_FILE_BYTES + 1), &mut bytes) {
                Err(e) => unreadable(e),
                Ok(n) if n as u64 > MAX_FILE_BYTES => {
                    Read::Unusable(format!("larger than {} KiB", MAX_FILE_BYTES / 1024))
                }
                Ok(_) => parse(&bytes),
            }
        }
    };
    Ok((lock, read))
}

/// A state file's text, read through `serde_json::Value` by hand, not derived: a derive would
/// build serde_json's deserializer again for each of these shapes (tens of KB of the binary);
/// `Value`'s is there already for `json()`. The value is taken apart, not copied, and history
/// entries are arrays (`[at, wall, exit, reason]`), not objects: each object is a map node and
/// four key strings, and twenty of them were most of what reading a file cost.
fn parse(bytes: &[u8]) -> Read {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Read::Unusable(format!("not a state file (corrupt: {e})")),
    };
    let Value::Object(mut top) = value else {
        return Read::Unusable("not a state file (no version)".into());
    };
    match top.get("version").map(Value::as_u64) {
        None => return Read::Unusable("not a state file (no version)".into()),
        Some(Some(v)) if v == u64::from(VERSION) => {}
        Some(Some(v)) => {
            return Read::Unusable(format!(
                "a state file of version {v}; this version of rhai-probe reads {VERSION}"
            ))
        }
        Some(None) => {
            return Read::Unusable("not a state file (its version is not a number)".into())
        }
    }
    match from_json(&mut top) {
        Some(state) => Read::State(Box::new(state)),
        None => Read::Unusable("not a state file (corrupt: a field of the wrong shape)".into()),
    }
}

fn from_json(top: &mut Map<String, Value>) -> Option<State> {
    let mut object = |key: &str| -> Option<Map<String, Value>> {
        match top.remove(key) {
            None => Some(Map::new()),
            Some(Value::Object(m)) => Some(m),
            Some(_) => None,
        }
    };
    let checks = object("checks")?;
    let rates = object("rates")?;
    let memory = object("memory")?;
    let mut state = State {
        version: VERSION,
        identity: match top.remove("identity")? {
            Value::String(s) => s,
            _ => return None,
        },
        memory: memory.into_iter().collect(),
        ..State::default()
    };
    for (name, c) in checks {
        let failing_since = match c.get("failing_since") {
            None | Some(Value::Null) => None,
            Some(t) => Some(t.as_f64()?),
        };
        let failures = match c.get("failures") {
            None => Vec::new(),
            Some(a) => a
                .as_array()?
                .iter()
                .map(Value::as_f64)
                .collect::<Option<_>>()?,
        };
        state.checks.insert(
            name,
            CheckState {
                failing_since,
                failures,
            },
        );
    }
    for (name, r) in rates {
        let value = r.get("value")?.as_f64()?;
        let at = r.get("at")?.as_f64()?;
        state.rates.insert(name, Sample { value, at });
    }
    match top.remove("history") {
        None => {}
        Some(Value::Array(history)) => {
            for e in history {
                let Value::Array(mut e) = e else { return None };
                if e.len() != 4 {
                    return None;
                }
                let Value::String(reason) = e.pop()? else {
                    return None;
                };
                state.history.push_back(Entry {
                    at: e[0].as_f64()?,
                    wall: e[1].as_u64()?,
                    exit: u8::try_from(e[2].as_u64()?).ok()?,
                    reason,
                });
            }
        }
        Some(_) => return None,
    }
    Some(state)
}

/// The file's text, written directly rather than built as a `Value` first (which cost more than
/// the file's own system calls).
fn to_json(state: &State) -> String {
    use std::fmt::Write as _;
    // A number as JSON has it; one that is not finite (a rate of a script's NaN) as null, which
    // the next run reads as a corrupt file and resets, as serde_json's `Value` did.
    fn num(out: &mut String, x: f64) {
        if x.is_finite() {
            let _ = write!(out, "{x:?}");
        } else {
            out.push_str("null");
        }
    }
    fn string(out: &mut String, s: &str) {
        // Serializing a `str` cannot fail.
        out.push_str(&serde_json::to_string(s).unwrap_or_default());
    }
    let mut out = String::with_capacity(1024);
    let _ = write!(out, "{{\"version\":{},\"identity\":", state.version);
    string(&mut out, &state.identity);
    out.push_str(",\"checks\":{");
    for (i, (name, c)) in state.checks.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, name);
        out.push_str(":{\"failing_since\":");
        match c.failing_since {
            Some(t) => num(&mut out, t),
            None => out.push_str("null"),
        }
        out.push_str(",\"failures\":[");
        for (j, &t) in c.failures.iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            num(&mut out, t);
        }
        out.push_str("]}");
    }
    out.push_str("},\"rates\":{");
    for (i, (name, r)) in state.rates.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, name);
        out.push_str(":{\"value\":");
        num(&mut out, r.value);
        out.push_str(",\"at\":");
        num(&mut out, r.at);
        out.push('}');
    }
    out.push_str("},\"memory\":{");
    for (i, (name, v)) in state.memory.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        string(&mut out, name);
        out.push(':');
        out.push_str(&v.to_string());
    }
    out.push_str("},\"history\":[");
    for (i, e) in state.history.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push('[');
        num(&mut out, e.at);
        let _ = write!(out, ",{},{},", e.wall, e.exit);
        string(&mut out, &e.reason);
        out.push(']');
    }
    out.push_str("]}");
    out
}

/// Write `state` to the spare file beside `path` (`FILE.next`) and swap the two names in one
/// atomic step (`renameat2(RENAME_EXCHANGE)`): readers see the old file or the new one, never a
/// torn one, and the old one becomes the next run's spare. Swapping rather than renaming a new
/// file over the old one creates and frees no inode per run (on tmpfs a third of what writing
/// cost), and ext4 does not flush a swapped file as it does one renamed over another. Where the
/// file system cannot swap, or on the first write, a plain rename.
fn write(path: &Path, state: &State) -> io::Result<()> {
    let bytes = to_json(state);
    let next = path.with_extension("json.next");
    let result = fs::File::create(&next)
        .and_then(|mut f| f.write_all(bytes.as_bytes()))
        .and_then(|()| swap(&next, path));
    if result.is_err() {
        let _ = fs::remove_file(&next);
    }
    result
}

/// Exchange `a` and `b`, or rename `a` to `b` when `b` does not exist or the file system
/// cannot exchange names.
fn swap(a: &Path, b: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let c = |p: &Path| std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (ca, cb) = (c(a)?, c(b)?);
    // SAFETY: two NUL-terminated paths that outlive the call; renameat2 reads only them.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        return Ok(());
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::ENOENT | libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => fs::rename(a, b),
        _ => Err(io::Error::last_os_error()),
    }
}

/// How a named check's failures count (`check(name, value, #{ grace } or #{ failures, within })`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Rule {
    /// Failed only once it has been failing without a break this long (seconds).
    Grace(f64),
    /// Failed when it failed at least `failures` times in the last `within` seconds.
    Window { failures: u32, within: f64 },
}

/// What a check's result counts as under its rule, and the words for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    pub passed: bool,
    pub note: Option<String>,
}

/// Judge a check that `passed` (or not) now, under `rule`, updating its state.
pub fn judge(check: &mut CheckState, passed: bool, rule: Rule, now: f64) -> Judged {
    match rule {
        Rule::Grace(grace) => {
            check.failures.clear();
            if passed {
                check.failing_since = None;
                return Judged {
                    passed: true,
                    note: None,
                };
            }
            let since = *check.failing_since.get_or_insert(now);
            let failing = (now - since).max(0.0);
            if failing < grace {
                Judged {
                    passed: true,
                    note: Some(format!(
                        "failing for {} of its {} grace",
                        period_text(failing),
                        period_text(grace)
                    )),
                }
            } else {
                Judged {
                    passed: false,
                    note: Some(format!(
                        "failing for {}, past its {} grace",
                        period_text(failing),
                        period_text(grace)
                    )),
                }
            }
        }
        Rule::Window { failures, within } => {
            check.failing_since = None;
            check.failures.retain(|t| now - t < within && *t <= now);
            if passed {
                return Judged {
                    passed: true,
                    note: None,
                };
            }
            check.failures.push(now);
            let keep = failures.max(1) as usize;
            if check.failures.len() > keep {
                check.failures.drain(..check.failures.len() - keep);
            }
            let count = check.failures.len();
            let times = |n: usize| {
                if n == 1 {
                    "once".to_string()
                } else {
                    format!("{n} times")
                }
            };
            if count >= failures as usize {
                Judged {
                    passed: false,
                    note: Some(format!(
                        "failed {} in the last {} (the limit is {failures})",
                        times(count),
                        period_text(within)
                    )),
                }
            } else {
                Judged {
                    passed: true,
                    note: Some(format!(
                        "failed {} in the last {}, fewer than {failures}",
                        times(count),
                        period_text(within)
                    )),
                }
            }
        }
    }
}

/// `rate(name, value)`: per second since the previous run's value; `None` on the first run (or
/// two runs at one instant). A value lower than the last is a counter reset, counted from zero
/// as Prometheus's `rate()` does, never a negative rate.
pub fn rate(
    samples: &mut BTreeMap<String, Sample>,
    name: &str,
    value: f64,
    now: f64,
) -> Option<f64> {
    let previous = samples.insert(name.to_string(), Sample { value, at: now })?;
    let elapsed = now - previous.at;
    if elapsed <= 0.0 {
        return None;
    }
    let increase = if value < previous.value {
        value
    } else {
        value - previous.value
    };
    Some(increase / elapsed)
}

/// A period for `grace` and `within`: seconds, or text with units (`90s`, `3m`, `2m30s`,
/// `1h`, `500ms`); at most 7 days.
pub fn period(text: &str) -> Result<f64, String> {
    let hint = "use a duration such as 30s, 3m, 2m30s, 1h";
    let t = text.trim();
    if t.is_empty() {
        return Err(format!("an empty duration; {hint}"));
    }
    let mut total = 0.0;
    let mut rest = t;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(digits);
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration '{text}'; {hint}"))?;
        let unit_end = after
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(after.len());
        let (unit, next) = after.split_at(unit_end);
        let scale = match unit.trim() {
            "" if next.is_empty() && total == 0.0 => 1.0,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86_400.0,
            "" => {
                return Err(format!(
                    "invalid duration '{text}': a number without a unit; {hint}"
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration '{text}': unknown unit '{other}'; {hint}"
                ))
            }
        };
        total += value * scale;
        rest = next;
    }
    if !total.is_finite() || total > 7.0 * 86_400.0 {
        return Err(format!("invalid duration '{text}': at most 7 days"));
    }
    Ok(total)
}

/// A period as the verdict line shows it: `47 s`, `3 m`, `2 m 50 s`, `1 h 5 m`.
pub fn period_text(secs: f64) -> String {
    if secs < 10.0 {
        let rounded = (secs * 10.0).round() / 10.0;
        return format!("{rounded} s");
    }
    let s = secs.round() as u64;
    let (h, m, s) = (s / 3600, s / 60 % 60, s % 60);
    match (h, m, s) {
        (0, 0, s) => format!("{s} s"),
        (0, m, 0) => format!("{m} m"),
        (0, m, s) => format!("{m} m {s} s"),
        (h, 0, _) => format!("{h} h"),
        (h, m, _) => format!("{h} h {m} m"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Runs every 10 s, failing from t=100 to t=300, then passing: what a grace period of 60 s
    /// makes of them.
    #[test]
    fn grace_counts_a_failure_only_once_it_has_lasted() {
        let mut c = CheckState::default();
        let rule = Rule::Grace(60.0);
        let mut verdicts = Vec::new();
        for t in (0..400).step_by(10) {
            let passed = !(100..=300).contains(&t);
            verdicts.push((t, judge(&mut c, passed, rule, t as f64).passed));
        }
        for (t, counted) in verdicts {
            let want = !(160..=300).contains(&t);
            assert_eq!(counted, want, "t={t}");
        }
        // A success resets it: a new streak gets the whole grace again.
        let mut c = CheckState::default();
        assert!(judge(&mut c, false, rule, 0.0).passed);
        assert!(judge(&mut c, false, rule, 50.0).passed);
        assert!(judge(&mut c, true, rule, 55.0).passed);
        assert!(judge(&mut c, false, rule, 100.0).passed);
        assert!(judge(&mut c, false, rule, 159.0).passed);
        let late = judge(&mut c, false, rule, 160.0);
        assert!(!late.passed);
        assert_eq!(
            late.note.as_deref(),
            Some("failing for 1 m, past its 1 m grace")
        );
        assert_eq!(
            judge(
                &mut CheckState {
                    failing_since: Some(0.0),
                    ..Default::default()
                },
                false,
                Rule::Grace(180.0),
                47.0
            )
            .note
            .as_deref(),
            Some("failing for 47 s of its 3 m grace")
        );
    }

    #[test]
    fn a_window_counts_failures_not_only_in_a_row() {
        let rule = Rule::Window {
            failures: 3,
            within: 300.0,
        };
        let mut c = CheckState::default();
        // Fail, pass, fail, pass, fail: three in five minutes, never twice in a row.
        let results: Vec<bool> = [
            (0, false),
            (60, true),
            (120, false),
            (180, true),
            (240, false),
        ]
        .iter()
        .map(|(t, p)| judge(&mut c, *p, rule, *t as f64).passed)
        .collect();
        assert_eq!(results, [true, true, true, true, false]);
        let mut c = CheckState::default();
        for t in [0.0, 100.0] {
            assert!(judge(&mut c, false, rule, t).passed);
        }
        // At t=301 the failure at 0 has left the window: two in it, passing.
        let j = judge(&mut c, false, rule, 301.0);
        assert!(j.passed, "{j:?}");
        assert_eq!(
            j.note.as_deref(),
            Some("failed 2 times in the last 5 m, fewer than 3")
        );
        let j = judge(&mut c, false, rule, 302.0);
        assert!(!j.passed);
        assert_eq!(
            j.note.as_deref(),
            Some("failed 3 times in the last 5 m (the limit is 3)")
        );
        assert!(c.failures.len() <= 3, "at most `failures` times are kept");
    }

    #[test]
    fn rates_per_second_with_counter_resets() {
        let mut samples = BTreeMap::new();
        assert_eq!(rate(&mut samples, "errors", 10.0, 100.0), None, "first run");
        assert_eq!(rate(&mut samples, "errors", 40.0, 110.0), Some(3.0));
        assert_eq!(rate(&mut samples, "errors", 40.0, 120.0), Some(0.0));
        // The counter went down: the process restarted and counted 5 since.
        assert_eq!(rate(&mut samples, "errors", 5.0, 130.0), Some(0.5));
        assert_eq!(
            rate(&mut samples, "errors", 5.0, 130.0),
            None,
            "no time passed"
        );
    }

    #[test]
    fn periods_read_and_shown() {
        assert_eq!(period("3m").unwrap(), 180.0);
        assert_eq!(period("2m30s").unwrap(), 150.0);
        assert_eq!(period("1h").unwrap(), 3600.0);
        assert_eq!(period("500ms").unwrap(), 0.5);
        assert_eq!(period("90").unwrap(), 90.0);
        assert!(period("3 fortnights").unwrap_err().contains("unknown unit"));
        assert!(period("8d").unwrap_err().contains("at most 7 days"));
        assert!(period("").is_err());
        assert_eq!(period_text(47.0), "47 s");
        assert_eq!(period_text(180.0), "3 m");
        assert_eq!(period_text(170.0), "2 m 50 s");
        assert_eq!(period_text(3900.0), "1 h 5 m");
        assert_eq!(period_text(0.25), "0.3 s");
    }

    #[test]
    fn file_names_are_readable_and_distinct() {
        let a = file_name("/etc/probe/liveness.rhai");
        let b = file_name("/etc/other/liveness.rhai");
        assert!(
            a.starts_with("liveness.rhai-") && a.ends_with(".state.json"),
            "{a}"
        );
        assert_ne!(a, b);
        assert!(file_name("<eval>").starts_with("_eval_-"));
        assert!(!file_name("../x").contains('/'));
    }

    #[test]
    fn a_state_reads_back_as_it_was_written() {
        let mut state = State {
            version: VERSION,
            identity: "boot x, pid 1 started at tick 7".into(),
            ..State::default()
        };
        state.checks.insert(
            "db".into(),
            CheckState {
                failing_since: Some(12.5),
                failures: vec![1.0, 2.0],
            },
        );
        state.checks.insert("api".into(), CheckState::default());
        state.rates.insert(
            "errors".into(),
            Sample {
                value: 40.0,
                at: 11.0,
            },
        );
        state.memory.insert("v".into(), json!({"a": [1, "x"]}));
        state.history.push_back(Entry {
            at: 3.0,
            wall: 1_800_000_000,
            exit: 1,
            reason: "r \"quoted\"\nand <b>\u{7}".into(),
        });
        state
            .checks
            .insert("a \"b\"\\".into(), CheckState::default());
        let text = to_json(&state);
        // What it writes is JSON, and reads back as it was.
        let _: Value = serde_json::from_str(&text).unwrap();
        match parse(text.as_bytes()) {
            Read::State(back) => assert_eq!(*back, state),
            _ => panic!("not read back"),
        }
        assert!(
            matches!(parse(br#"{"version": 2, "identity": "x", "checks": []}"#), Read::Unusable(m) if m.contains("wrong shape"))
        );
    }

    #[test]
    fn files_of_another_kind_or_version_are_not_read() {
        assert!(matches!(parse(b"{"), Read::Unusable(m) if m.contains("corrupt")));
        assert!(matches!(parse(b"{\"a\": 1}"), Read::Unusable(m) if m.contains("no version")));
        assert!(matches!(parse(b"{\"version\": 9}"), Read::Unusable(m) if m.contains("version 9")));
        assert!(matches!(
            parse(b"{\"version\": 2, \"identity\": \"x\"}"),
            Read::State(_)
        ));
    }
}

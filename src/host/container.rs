//! This container's own CPU and memory, from its cgroup: v2 (`memory.max`, `cpu.max`,
//! `cpu.stat`, PSI) or v1 (`memory.limit_in_bytes`, `cpu.cfs_quota_us`, `cpuacct.usage`).
//! Inside a pod, `load_avg()` and `/proc/meminfo` describe the node; these describe the pod.
//!
//! Every path is read under one root (`/`, or `RHAI_PROBE_ROOT`), so tests can point the reader
//! at a fixture tree copied from real v1 and v2 machines.

use std::{
    path::{Path, PathBuf},
    rc::Rc,
    time::{Duration, Instant},
};

use rhai::{Dynamic, Engine, Map, NativeCallContext, INT};

use super::{
    decl::{unit_key as key, Fails, HostFn, Stub, Time, Type},
    result_map, Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[MEMORY, CPU, CPU_USAGE_PCT];


pub const MEMORY: HostFn = HostFn {
    name: "memory",
    signatures: &["memory() -> map"],
    summary: "this container's memory: #{limit, used, working_set, used_pct, total, available, pressure_avg10, cgroup}",
    options: &[],
    keys: &[
        key("limit", Type::Int, "the cgroup's limit in bytes, or `()` when there is none (v2 `max`, v1's huge \"no limit\" value, or anything above the host's memory)"),
        key("used", Type::Int, "bytes charged to the cgroup, page cache included"),
        key("working_set", Type::Int, "`used` minus inactive file cache: what kubelet evicts and `kubectl top` shows; `()` when `memory.stat` is unreadable"),
        key("used_pct", Type::Float, "`used` in % of `limit`, or of the host's `total` when there is no limit"),
        key("total", Type::Int, "the host's `MemTotal` (bytes)"),
        key("available", Type::Int, "the host's `MemAvailable` (bytes)"),
        key("pressure_avg10", Type::Float, "PSI: % of the last 10 s some task waited for memory (cgroup v2 with PSI), else `()`"),
        key("cgroup", Type::String, "which cgroup was read, e.g. `v2 /sys/fs/cgroup`"),
    ],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "{ used_pct = 40.0, working_set = 100000000 }",
        failing: "{ used_pct = 97.0, working_set = 990000000 }",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_memory,
};

pub const CPU: HostFn = HostFn {
    name: "cpu",
    signatures: &["cpu() -> map"],
    summary: "this container's CPU: #{quota_cpus, usage_usec, nr_throttled, throttled_usec, pressure_avg10, cgroup}",
    options: &[],
    keys: &[
        key("quota_cpus", Type::Float, "CPUs the quota allows (v2 `cpu.max`, v1 `cpu.cfs_quota_us` / `cfs_period_us`: `0.5` for a 500m limit); `()` without a quota"),
        key("usage_usec", Type::Int, "CPU time used since the cgroup began, µs"),
        key("nr_throttled", Type::Int, "periods in which the quota held it back"),
        key("throttled_usec", Type::Int, "time the quota held it back, µs"),
        key("pressure_avg10", Type::Float, "PSI: % of the last 10 s some task waited for a CPU (cgroup v2 with PSI), else `()`"),
        key("cgroup", Type::String, "which cgroup was read"),
    ],
    fails: Fails::Throws,
    time: Time::Local,
    secrets: &[],
    stub: Stub::Answer {
        example: "{ quota_cpus = 2.0, nr_throttled = 0 }",
        failing: "{ quota_cpus = 2.0, nr_throttled = 5000, pressure_avg10 = 80.0 }",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_cpu,
};

pub const CPU_USAGE_PCT: HostFn = HostFn {
    name: "cpu_usage_pct",
    signatures: &["cpu_usage_pct(sample_ms: int) -> float"],
    summary: "this container's CPU use over a short sample, in % of the CPUs it may use",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Waits,
    secrets: &[],
    stub: Stub::Answer {
        example: "25.0",
        failing: "99.0",
    },
    reach: crate::host::decl::Reach::Nothing,
    register: register_cpu_usage_pct,
};

/// Where `/proc` and `/sys` are: `/`, or `RHAI_PROBE_ROOT` (a fixture tree in tests).
pub fn root() -> PathBuf {
    std::env::var_os("RHAI_PROBE_ROOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn read(root: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix("/").unwrap_or(path);
    std::fs::read_to_string(root.join(relative)).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// The cgroup directories of this process, found from `/proc/self/cgroup`.
pub struct Cgroup {
    root: PathBuf,
    pub version: Version,
    /// v2: the one directory; v1: per controller, below.
    v2_dir: PathBuf,
    lines: String,
}

impl Cgroup {
    pub fn open(root: &Path) -> Result<Cgroup, String> {
        let lines = read(root, Path::new("/proc/self/cgroup"))
            .ok_or("cannot read /proc/self/cgroup: is this Linux?")?;
        let v2 = root.join("sys/fs/cgroup/cgroup.controllers").exists();
        let mut cgroup = Cgroup {
            root: root.to_path_buf(),
            version: if v2 { Version::V2 } else { Version::V1 },
            v2_dir: PathBuf::from("/sys/fs/cgroup"),
            lines,
        };
        if v2 {
            let path = cgroup
                .lines
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/")
                .to_string();
            cgroup.v2_dir = cgroup.existing(Path::new("/sys/fs/cgroup"), &path);
        }
        Ok(cgroup)
    }

    /// `base/path` when it exists; else `base` (a cgroup namespace shows the container's own
    /// cgroup at the mount's root while /proc/self/cgroup may still name the host's path).
    fn existing(&self, base: &Path, path: &str) -> PathBuf {
        let joined = base.join(path.trim_start_matches('/'));
        let relative = joined.strip_prefix("/").unwrap_or(&joined);
        if path != "/" && self.root.join(relative).is_dir() {
            joined
        } else {
            base.to_path_buf()
        }
    }

    /// v1: the directory of a controller (`memory`, `cpu`, `cpuacct`).
    fn v1_dir(&self, controller: &str) -> PathBuf {
        let path = self
            .lines
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
                controllers
                    .split(',')
                    .any(|c| c == controller)
                    .then(|| path.to_string())
            })
            .unwrap_or_else(|| "/".into());
        // Mounted as /sys/fs/cgroup/cpu, or combined as /sys/fs/cgroup/cpu,cpuacct.
        let mut base = PathBuf::from(format!("/sys/fs/cgroup/{controller}"));
        if matches!(controller, "cpu" | "cpuacct")
            && !self
                .root
                .join(base.strip_prefix("/").unwrap_or(&base))
                .exists()
        {
            base = PathBuf::from("/sys/fs/cgroup/cpu,cpuacct");
        }
        self.existing(&base, &path)
    }

    fn file(&self, dir: &Path, name: &str) -> Option<String> {
        read(&self.root, &dir.join(name)).map(|s| s.trim().to_string())
    }

    fn v2(&self, name: &str) -> Option<String> {
        self.file(&self.v2_dir, name)
    }

    fn v1(&self, controller: &str, name: &str) -> Option<String> {
        self.file(&self.v1_dir(controller), name)
    }

    /// The cgroup's directory for a controller, for messages and the `cgroup` key.
    pub fn describe(&self, controller: &str) -> String {
        match self.version {
            Version::V2 => format!("v2 {}", self.v2_dir.display()),
            Version::V1 => format!("v1 {}", self.v1_dir(controller).display()),
        }
    }

    /// `used` minus inactive file cache: what kubelet calls the working set and evicts on.
    pub fn working_set(&self, used: u64) -> Option<u64> {
        let (text, key) = match self.version {
            Version::V2 => (self.v2("memory.stat"), "inactive_file"),
            Version::V1 => (self.v1("memory", "memory.stat"), "total_inactive_file"),
        };
        let inactive = text?.lines().find_map(|l| {
            let (k, v) = l.split_once(' ')?;
            (k == key).then(|| v.trim().parse::<u64>().ok()).flatten()
        })?;
        Some(used.saturating_sub(inactive))
    }

    /// Bytes: (limit, or None when unlimited; used).
    pub fn memory(&self, host_total: Option<u64>) -> Result<(Option<u64>, u64), String> {
        let (limit, used) = match self.version {
            Version::V2 => (self.v2("memory.max"), self.v2("memory.current")),
            Version::V1 => (
                self.v1("memory", "memory.limit_in_bytes"),
                self.v1("memory", "memory.usage_in_bytes"),
            ),
        };
        let used = used.and_then(|u| u.parse::<u64>().ok()).ok_or_else(|| {
            format!(
                "cannot read the memory use of cgroup {}",
                self.describe("memory")
            )
        })?;
        let limit = limit
            .filter(|l| l != "max")
            .and_then(|l| l.parse::<u64>().ok())
            // v1 writes "no limit" as a page-rounded i64::MAX; anything above the host's
            // memory cannot be reached either.
            .filter(|&l| l < (1 << 62) && host_total.is_none_or(|t| l < t));
        Ok((limit, used))
    }

    /// (CPUs allowed by the quota or None, usage µs, throttled periods, throttled µs).
    pub fn cpu(&self) -> Result<(Option<f64>, u64, u64, u64), String> {
        let stat = |text: Option<String>, key: &str| -> Option<u64> {
            text?.lines().find_map(|l| {
                let (k, v) = l.split_once(' ')?;
                (k == key).then(|| v.trim().parse().ok()).flatten()
            })
        };
        match self.version {
            Version::V2 => {
                let quota = self.v2("cpu.max").and_then(|max| {
                    let (q, p) = max.split_once(' ')?;
                    let (q, p) = (q.parse::<f64>().ok()?, p.parse::<f64>().ok()?);
                    (p > 0.0).then_some(q / p)
                });
                let text = self.v2("cpu.stat");
                let usage = stat(text.clone(), "usage_usec").ok_or_else(|| {
                    format!("cannot read cpu.stat of cgroup {}", self.describe("cpu"))
                })?;
                Ok((
                    quota,
                    usage,
                    stat(text.clone(), "nr_throttled").unwrap_or(0),
                    stat(text, "throttled_usec").unwrap_or(0),
                ))
            }
            Version::V1 => {
                let quota = self
                    .v1("cpu", "cpu.cfs_quota_us")
                    .and_then(|q| q.parse::<f64>().ok())
                    .filter(|q| *q > 0.0)
                    .and_then(|q| {
                        let p = self.v1("cpu", "cpu.cfs_period_us")?.parse::<f64>().ok()?;
                        (p > 0.0).then_some(q / p)
                    });
                let usage = self
                    .v1("cpuacct", "cpuacct.usage")
                    .and_then(|u| u.parse::<u64>().ok())
                    .map(|ns| ns / 1000)
                    .ok_or_else(|| {
                        format!(
                            "cannot read cpuacct.usage of cgroup {}",
                            self.describe("cpuacct")
                        )
                    })?;
                let text = self.v1("cpu", "cpu.stat");
                Ok((
                    quota,
                    usage,
                    stat(text.clone(), "nr_throttled").unwrap_or(0),
                    stat(text, "throttled_time").unwrap_or(0) / 1000,
                ))
            }
        }
    }

    /// PSI `some avg10` for "memory" or "cpu" (v2 only; None where the kernel has no PSI).
    pub fn pressure(&self, what: &str) -> Option<f64> {
        if self.version != Version::V2 {
            return None;
        }
        let text = self.v2(&format!("{what}.pressure"))?;
        let some = text.lines().find(|l| l.starts_with("some "))?;
        some.split_whitespace()
            .find_map(|f| f.strip_prefix("avg10="))?
            .parse()
            .ok()
    }
}

/// `MemTotal` and `MemAvailable` of `/proc/meminfo`, in bytes.
fn meminfo(root: &Path) -> (Option<u64>, Option<u64>) {
    let text = read(root, Path::new("/proc/meminfo")).unwrap_or_default();
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
    };
    (field("MemTotal:"), field("MemAvailable:"))
}

fn opt_int(v: Option<u64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, |v| Dynamic::from(v as INT))
}

fn opt_float(v: Option<f64>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Dynamic::from_float)
}

/// What `memory()` reads, on whichever thread reads it.
struct MemoryFacts {
    limit: Option<u64>,
    used: u64,
    working_set: Option<u64>,
    used_pct: Option<f64>,
    total: Option<u64>,
    available: Option<u64>,
    pressure: Option<f64>,
    cgroup: String,
}

fn memory(host: &Host, ctx: &NativeCallContext) -> RhaiResult<Dynamic> {
    let facts = host.local(ctx, &MEMORY, "memory()".into(), || {
        let root = root();
        let cgroup = Cgroup::open(&root).map_err(HostError::Transport)?;
        let (total, available) = meminfo(&root);
        let (limit, used) = cgroup.memory(total).map_err(HostError::Transport)?;
        let of = limit.or(total).filter(|t| *t > 0);
        let used_pct = of.map(|t| used as f64 / t as f64 * 100.0);
        let shown = match (limit, used_pct) {
            (Some(l), Some(p)) => format!("{} of {} ({p:.1}%)", mib(used), mib(l)),
            (None, Some(p)) => format!("{}, no limit ({p:.1}% of the host)", mib(used)),
            _ => mib(used),
        };
        let facts = MemoryFacts {
            limit,
            used,
            working_set: cgroup.working_set(used),
            used_pct,
            total,
            available,
            pressure: cgroup.pressure("memory"),
            cgroup: cgroup.describe("memory"),
        };
        Ok((facts, Outcome::Pass(shown)))
    })?;
    let mut map = Map::new();
    map.insert("limit".into(), opt_int(facts.limit));
    map.insert("used".into(), Dynamic::from(facts.used as INT));
    map.insert("working_set".into(), opt_int(facts.working_set));
    map.insert("used_pct".into(), opt_float(facts.used_pct));
    map.insert("total".into(), opt_int(facts.total));
    map.insert("available".into(), opt_int(facts.available));
    map.insert("pressure_avg10".into(), opt_float(facts.pressure));
    map.insert("cgroup".into(), Dynamic::from(facts.cgroup));
    Ok(result_map(&MEMORY, map))
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn cpu(host: &Host, ctx: &NativeCallContext) -> RhaiResult<Dynamic> {
    let (quota, usage, nr_throttled, throttled, pressure, described) =
        host.local(ctx, &CPU, "cpu()".into(), || {
            let cgroup = Cgroup::open(&root()).map_err(HostError::Transport)?;
            let (quota, usage, nr_throttled, throttled) =
                cgroup.cpu().map_err(HostError::Transport)?;
            let shown = match quota {
                Some(q) => format!("quota {q} CPUs, throttled {nr_throttled} times"),
                None => format!("no quota, throttled {nr_throttled} times"),
            };
            let facts = (
                quota,
                usage,
                nr_throttled,
                throttled,
                cgroup.pressure("cpu"),
                cgroup.describe("cpu"),
            );
            Ok((facts, Outcome::Pass(shown)))
        })?;
    let mut map = Map::new();
    map.insert("quota_cpus".into(), opt_float(quota));
    map.insert("usage_usec".into(), Dynamic::from(usage as INT));
    map.insert("nr_throttled".into(), Dynamic::from(nr_throttled as INT));
    map.insert("throttled_usec".into(), Dynamic::from(throttled as INT));
    map.insert("pressure_avg10".into(), opt_float(pressure));
    map.insert("cgroup".into(), Dynamic::from(described));
    Ok(result_map(&CPU, map))
}

/// CPU used by this container over `sample_ms`, in percent of the CPUs it may use (its quota,
/// else the CPUs of its affinity mask): 100 means all of them, all the time.
fn cpu_usage_pct(host: &Host, ctx: &NativeCallContext, sample_ms: INT) -> RhaiResult<f64> {
    if !(1..=10_000).contains(&sample_ms) {
        let message = format!("sample_ms must be 1-10000, got {sample_ms}");
        return Err(HostError::Fault(message).into_fault("cpu_usage_pct", ctx));
    }
    let sample = Duration::from_millis(sample_ms as u64);
    let what = format!("cpu_usage_pct({sample_ms})");
    host.call(
        ctx,
        &CPU_USAGE_PCT,
        &[],
        what,
        Some(sample + Duration::from_millis(50)),
        |budget| {
            let cgroup = Cgroup::open(&root()).map_err(HostError::Transport)?;
            let (quota, before, ..) = cgroup.cpu().map_err(HostError::Transport)?;
            let started = Instant::now();
            std::thread::sleep(sample.min(budget));
            let (_, after, ..) = cgroup.cpu().map_err(HostError::Transport)?;
            let elapsed = started.elapsed().as_secs_f64() * 1e6;
            let cpus = quota.unwrap_or_else(|| {
                std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64)
            });
            let pct = (after.saturating_sub(before)) as f64 / (elapsed * cpus) * 100.0;
            Ok((pct, Outcome::Pass(format!("{pct:.1}% of {cpus} CPUs"))))
        },
    )
}

fn register_memory(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("memory", move |ctx: NativeCallContext| memory(&h, &ctx));
}

fn register_cpu(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("cpu", move |ctx: NativeCallContext| cpu(&h, &ctx));
}

fn register_cpu_usage_pct(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("cpu_usage_pct", move |ctx: NativeCallContext, ms: INT| {
        cpu_usage_pct(&h, &ctx, ms)
    });
}

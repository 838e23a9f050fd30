//! Least privilege: what a probe may reach, set on the command line (and so in the pod spec,
//! which the editors of a script's ConfigMap do not control), never in the script.
//!
//! `--allow-net`, `--allow-read` and `--allow-env` (or `RHAI_PROBE_ALLOW_NET`, `…_READ`,
//! `…_ENV`) each take a comma-separated list. Without any of them nothing is checked, as before
//! they existed. Once one is given, the kinds not given are denied: `--allow-net 127.0.0.1:8080`
//! alone also stops `read_file` and `env`. `*` allows all of a kind, an empty list
//! (`--allow-env=`) none of it.
//!
//! The checks sit where the world is reached — the one place that resolves and connects
//! (`tcp::resolve`, HTTP's resolver and connector, the SQL drivers' targets), and the file and
//! environment functions — so a redirect, a name that resolves elsewhere, a symlink or a `..`
//! is checked as what it really reaches. A denied call reaches nothing: no lookup, no connect,
//! no open. It is the script's fault (exit 3), at its position, naming the call, the target
//! and the flag that would allow it.

use std::{
    cell::RefCell,
    net::{IpAddr, SocketAddr},
    path::{Component, Path, PathBuf},
    sync::OnceLock,
};

/// One kind's allowlist, as given (for messages) and as parsed.
#[derive(Debug, Clone)]
struct List<T> {
    shown: String,
    entries: Vec<T>,
}

/// What the command line allows. `None` for a kind: no flag given for it (then denied, since
/// a `Permissions` exists only when some flag was given).
#[derive(Debug, Clone, Default)]
pub struct Permissions {
    net: Option<List<NetRule>>,
    read: Option<List<PathRule>>,
    env: Option<List<String>>,
}

#[derive(Debug, Clone, PartialEq)]
enum NetHost {
    Any,
    Name(String),
    /// `*.svc.cluster.local`: stored as `.svc.cluster.local`.
    Suffix(String),
    /// An address or a CIDR block.
    Block(IpAddr, u8),
    /// `unix:/run/app.sock`: that socket, or any under that directory.
    Unix(PathBuf),
}

#[derive(Debug, Clone, PartialEq)]
struct NetRule {
    host: NetHost,
    /// `None`: any port.
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq)]
enum PathRule {
    Any,
    /// A directory or file, with its symlinks resolved where it exists.
    Under(PathBuf),
}

/// The flags as given: `None` where a flag (and its environment variable) was not given.
#[derive(Debug, Clone, Default)]
pub struct Given {
    pub net: Option<Vec<String>>,
    pub read: Option<Vec<String>>,
    pub env: Option<Vec<String>>,
}

impl Given {
    /// The flags, else their environment variables (`RHAI_PROBE_ALLOW_NET`, …; an empty
    /// variable is not given, as `--allow-net=` is an empty list).
    pub fn with_env(mut self) -> Given {
        let [net, read, env] = from_environment();
        let given = |v: Option<String>| v.filter(|v| !v.is_empty()).map(|v| vec![v]);
        self.net = self.net.or_else(|| given(net));
        self.read = self.read.or_else(|| given(read));
        self.env = self.env.or_else(|| given(env));
        self
    }

    /// Parse what was given: `None` when nothing was (no checks at all).
    pub fn parse(&self) -> Result<Option<Permissions>, String> {
        if self.net.is_none() && self.read.is_none() && self.env.is_none() {
            return Ok(None);
        }
        fn list<T>(
            values: &Option<Vec<String>>,
            flag: &str,
            parse: impl Fn(&str) -> Result<T, String>,
        ) -> Result<Option<List<T>>, String> {
            let Some(values) = values else {
                return Ok(None);
            };
            let items: Vec<&str> = values
                .iter()
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            let entries = items
                .iter()
                .map(|item| parse(item).map_err(|e| format!("{flag} {item}: {e}")))
                .collect::<Result<_, _>>()?;
            Ok(Some(List {
                shown: items.join(","),
                entries,
            }))
        }
        Ok(Some(Permissions {
            net: list(&self.net, "--allow-net", net_rule)?,
            read: list(&self.read, "--allow-read", path_rule)?,
            env: list(&self.env, "--allow-env", env_rule)?,
        }))
    }
}

/// `RHAI_PROBE_ALLOW_NET`, `…_READ` and `…_ENV`, in one pass over the environment that looks
/// at the first bytes of each entry: three `getenv`s (musl compares every entry with each name)
/// cost every run ~5,000 instructions.
fn from_environment() -> [Option<String>; 3] {
    const PREFIX: &[u8] = b"RHAI_PROBE_ALLOW_";
    unsafe extern "C" {
        static environ: *const *const libc::c_char;
    }
    let mut found = [None, None, None];
    // SAFETY: `environ` is the process's environment, a null-terminated array of C strings.
    // It is read before anything runs, and nothing in this program changes the environment.
    unsafe {
        let mut entry = environ;
        while !entry.is_null() && !(*entry).is_null() {
            let text = *entry as *const u8;
            entry = entry.add(1);
            // Compare the prefix byte by byte, stopping at the first difference (or the NUL).
            if (0..PREFIX.len()).any(|i| *text.add(i) != PREFIX[i]) {
                continue;
            }
            let bytes = std::ffi::CStr::from_ptr(text.cast()).to_bytes();
            let Some((key, value)) = bytes[PREFIX.len()..].split_at_checked(
                bytes[PREFIX.len()..]
                    .iter()
                    .position(|b| *b == b'=')
                    .unwrap_or(usize::MAX),
            ) else {
                continue;
            };
            let slot = match key {
                b"NET" => 0,
                b"READ" => 1,
                b"ENV" => 2,
                _ => continue,
            };
            found[slot] = std::str::from_utf8(&value[1..]).ok().map(str::to_string);
        }
    }
    found
}

fn net_rule(item: &str) -> Result<NetRule, String> {
    if let Some(path) = item.strip_prefix("unix:") {
        if !path.starts_with('/') {
            return Err("a unix socket is given by its absolute path (unix:/run/app.sock)".into());
        }
        return Ok(NetRule {
            host: NetHost::Unix(resolved(Path::new(path))),
            port: None,
        });
    }
    let port = |p: &str| -> Result<Option<u16>, String> {
        match p {
            "*" => Ok(None),
            _ => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .map(Some)
                .ok_or_else(|| format!("port '{p}' is not a number in 1-65535 (or *)")),
        }
    };
    // [v6], [v6]:port, [v6/64]:port; a bare v6 address or block has no port.
    let (host, port) = if let Some(rest) = item.strip_prefix('[') {
        let (h, after) = rest.split_once(']').ok_or("a '[' without ']'")?;
        match after {
            "" => (h, None),
            _ => (
                h,
                port(after.strip_prefix(':').ok_or("expected :PORT after ']'")?)?,
            ),
        }
    } else if item.matches(':').count() > 1 {
        (item, None)
    } else {
        match item.rsplit_once(':') {
            Some((h, p)) => (h, port(p)?),
            None => (item, None),
        }
    };
    let host = if host == "*" {
        NetHost::Any
    } else if let Some(suffix) = host.strip_prefix("*.") {
        if suffix.is_empty() || suffix.contains('*') {
            return Err("a suffix is *.NAME (*.svc.cluster.local)".into());
        }
        NetHost::Suffix(format!(".{}", lower_name(suffix)))
    } else if let Some((ip, bits)) = host.split_once('/') {
        let ip: IpAddr = ip
            .parse()
            .map_err(|_| format!("'{ip}' is not an IP address (a CIDR block is ADDRESS/BITS)"))?;
        let max = if ip.is_ipv4() { 32 } else { 128 };
        let bits = bits
            .parse::<u8>()
            .ok()
            .filter(|b| *b <= max)
            .ok_or_else(|| format!("'/{bits}' is not a prefix length in 0-{max}"))?;
        NetHost::Block(ip, bits)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        NetHost::Block(ip, if ip.is_ipv4() { 32 } else { 128 })
    } else if host.is_empty() || host.contains(['*', '/', '@', ' ']) {
        return Err(
            "expected HOST[:PORT], *.SUFFIX[:PORT], ADDRESS/BITS, [IPv6]:PORT or unix:/PATH".into(),
        );
    } else {
        NetHost::Name(lower_name(host))
    };
    Ok(NetRule { host, port })
}

fn path_rule(item: &str) -> Result<PathRule, String> {
    if item == "*" {
        return Ok(PathRule::Any);
    }
    if !item.starts_with('/') {
        return Err("give an absolute path (/etc/rhai-probe)".into());
    }
    Ok(PathRule::Under(resolved(Path::new(item))))
}

fn env_rule(item: &str) -> Result<String, String> {
    if item.contains(['=', ' ']) || item[..item.len() - 1].contains('*') {
        return Err("expected NAME, PREFIX* or *".into());
    }
    Ok(item.to_string())
}

/// A host name as compared: lower case, without a final dot.
fn lower_name(host: &str) -> String {
    host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase()
}

/// `path` with its symlinks resolved as far as it exists, and the rest appended; `None` when
/// the part that does not exist climbs out with `..` (where it would land cannot be known).
fn resolve_path(path: &Path) -> Option<PathBuf> {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().ok()?.join(path)
    };
    let mut missing = Vec::new();
    let mut at = absolute.as_path();
    loop {
        match std::fs::canonicalize(at) {
            Ok(mut real) => {
                for part in missing.iter().rev() {
                    match part {
                        Component::Normal(p) => real.push(p),
                        Component::CurDir => {}
                        _ => return None,
                    }
                }
                return Some(real);
            }
            Err(_) => {
                missing.push(at.components().next_back()?);
                at = at.parent()?;
            }
        }
    }
}

/// An allowlist path, resolved as a path it covers is (a missing one is kept as given).
fn resolved(path: &Path) -> PathBuf {
    resolve_path(path).unwrap_or_else(|| path.to_path_buf())
}

static GRANTED: OnceLock<Option<Permissions>> = OnceLock::new();

thread_local! {
    /// The last denial on this thread, for `Host::finish` to report as the script's fault
    /// whatever the code between (a driver, ureq) made of the error.
    static DENIED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Set the process's permissions, once, before any script runs.
pub fn install(permissions: Option<Permissions>) {
    let _ = GRANTED.set(permissions);
}

/// The permissions in force, if any flag was given.
pub fn granted() -> Option<&'static Permissions> {
    GRANTED.get().and_then(Option::as_ref)
}

/// The denial this thread recorded since the last call, if any.
pub fn take_denied() -> Option<String> {
    DENIED.with(|d| d.borrow_mut().take())
}

fn deny(message: String) -> String {
    DENIED.with(|d| *d.borrow_mut() = Some(message.clone()));
    message
}

/// `host:port` as messages show it.
fn endpoint(host: &str, port: Option<u16>) -> String {
    let host = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host,
    }
}

impl Permissions {
    fn not_allowed<T>(list: &Option<List<T>>, flag: &str) -> String {
        match list {
            Some(l) if l.shown.is_empty() => format!("is not allowed: {flag} is empty"),
            Some(l) => format!("is not allowed by {flag} ({})", l.shown),
            None => format!(
                "is not allowed: no {flag} was given, and with any --allow-* flag what is not \
                 allowed is denied"
            ),
        }
    }

    /// Whether `host` (a name or an IP literal) may be reached on `port` (`None`: any port,
    /// as for `dns_resolve`), before any lookup.
    pub fn check_name(&self, host: &str, port: Option<u16>) -> Result<(), String> {
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let entries = self.net.as_ref().map_or(&[][..], |l| &l.entries[..]);
        let port_ok = |rule: &NetRule| rule.port.is_none() || port.is_none() || rule.port == port;
        let ok = match bare.parse::<IpAddr>() {
            Ok(ip) => entries.iter().any(|r| port_ok(r) && covers(&r.host, ip)),
            Err(_) => {
                let n = lower_name(bare);
                entries.iter().any(|r| {
                    port_ok(r)
                        && match &r.host {
                            NetHost::Any => true,
                            NetHost::Name(allowed) => *allowed == n,
                            NetHost::Suffix(s) => n.ends_with(s.as_str()),
                            _ => false,
                        }
                })
            }
        };
        if ok {
            return Ok(());
        }
        Err(deny(format!(
            "to {} {}",
            endpoint(bare, port),
            Self::not_allowed(&self.net, "--allow-net")
        )))
    }

    /// The addresses `host` resolved to that may be reached: with an address or a block in
    /// `--allow-net`, those in one (a name that resolves only elsewhere is denied; `localhost`
    /// allowed with 127.0.0.0/8 connects to 127.0.0.1, not ::1); with names only, a name that
    /// is allowed may resolve where it does.
    pub fn allowed_addrs(
        &self,
        host: &str,
        addrs: &[SocketAddr],
    ) -> Result<Vec<SocketAddr>, String> {
        let Some(list) = &self.net else {
            return Ok(addrs.to_vec());
        };
        let blocks: Vec<&NetRule> = list
            .entries
            .iter()
            .filter(|r| matches!(r.host, NetHost::Block(..) | NetHost::Any))
            .collect();
        if blocks.is_empty() || host.parse::<IpAddr>().is_ok() {
            return Ok(addrs.to_vec());
        }
        let allowed = |addr: &SocketAddr| {
            blocks.iter().any(|r| {
                (r.port.is_none() || r.port == Some(addr.port())) && covers(&r.host, addr.ip())
            })
        };
        let kept: Vec<SocketAddr> = addrs.iter().copied().filter(allowed).collect();
        match addrs.iter().find(|a| !allowed(a)) {
            Some(addr) if kept.is_empty() => Err(deny(format!(
                "to {} (it resolved to {addr}) {}",
                endpoint(host, Some(addr.port())),
                Self::not_allowed(&self.net, "--allow-net")
            ))),
            _ => Ok(kept),
        }
    }

    /// As [`Permissions::allowed_addrs`], for a driver that connects on its own to whichever
    /// address it resolves: every one must be allowed.
    pub fn check_addrs(&self, host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
        let kept = self.allowed_addrs(host, addrs)?;
        match addrs.iter().find(|a| !kept.contains(a)) {
            None => Ok(()),
            Some(addr) => Err(deny(format!(
                "to {} (it resolved to {addr} too, and the driver may connect to any of them) {}",
                endpoint(host, Some(addr.port())),
                Self::not_allowed(&self.net, "--allow-net")
            ))),
        }
    }

    /// Whether the unix socket at `path` may be reached.
    pub fn check_unix(&self, path: &Path) -> Result<(), String> {
        let real = resolve_path(path);
        let entries = self.net.as_ref().map_or(&[][..], |l| &l.entries[..]);
        let ok = real.as_ref().is_some_and(|real| {
            entries.iter().any(|r| match &r.host {
                NetHost::Any => true,
                NetHost::Unix(allowed) => real.starts_with(allowed),
                _ => false,
            })
        });
        if ok {
            return Ok(());
        }
        Err(deny(format!(
            "to unix:{}{} {}",
            crate::redact::path(path),
            shown_resolution(path, real.as_deref()),
            Self::not_allowed(&self.net, "--allow-net")
        )))
    }

    /// Whether the file at `path` may be read (or looked at): it, with its symlinks resolved,
    /// must be under a path of `--allow-read`.
    pub fn check_read(&self, path: &Path) -> Result<(), String> {
        let real = resolve_path(path);
        let entries = self.read.as_ref().map_or(&[][..], |l| &l.entries[..]);
        let ok = real.as_ref().is_some_and(|real| {
            entries.iter().any(|r| match r {
                PathRule::Any => true,
                PathRule::Under(allowed) => real.starts_with(allowed),
            })
        });
        if ok {
            return Ok(());
        }
        Err(deny(format!(
            "of {}{} {}",
            crate::redact::path(path),
            shown_resolution(path, real.as_deref()),
            Self::not_allowed(&self.read, "--allow-read")
        )))
    }

    /// Whether the environment variable `name` may be read.
    pub fn check_env(&self, var: &str) -> Result<(), String> {
        let entries = self.env.as_ref().map_or(&[][..], |l| &l.entries[..]);
        let ok = entries.iter().any(|e| match e.strip_suffix('*') {
            Some(prefix) => var.starts_with(prefix),
            None => e == var,
        });
        if ok {
            return Ok(());
        }
        Err(deny(format!(
            "of {var:?} {}",
            Self::not_allowed(&self.env, "--allow-env")
        )))
    }
}

/// ` (it resolves to /x)` when the path is not what it names.
fn shown_resolution(path: &Path, real: Option<&Path>) -> String {
    match real {
        Some(real) if real != path => format!(" (it resolves to {})", crate::redact::path(real)),
        Some(_) => String::new(),
        None => " (it climbs out of a directory that does not exist)".into(),
    }
}

fn covers(host: &NetHost, ip: IpAddr) -> bool {
    match *host {
        NetHost::Any => true,
        NetHost::Block(net, bits) => in_block(ip, net, bits),
        _ => false,
    }
}

fn in_block(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    // An IPv4-mapped IPv6 address is the IPv4 address it maps.
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(bits)).unwrap_or(0);
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(bits)).unwrap_or(0);
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// One thing a call reaches, as its arguments say (`HostFn::reach`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Net(String, Option<u16>),
    Unix(PathBuf),
    Read(PathBuf),
    Env(String),
}

impl Access {
    /// The flag that allows it, and the entry: `("--allow-net", "db:5432")`.
    pub fn entry(&self) -> (&'static str, String) {
        match self {
            Access::Net(host, port) => ("--allow-net", endpoint(host, *port)),
            Access::Unix(path) => ("--allow-net", format!("unix:{}", path.display())),
            Access::Read(path) => ("--allow-read", path.display().to_string()),
            Access::Env(name) => ("--allow-env", name.clone()),
        }
    }
}

/// The flags that allow `accesses`, each with its entries in order: what `check --permissions`
/// prints. Every kind is listed (with any flag given, a kind not given is denied); a kind
/// nothing needs gets an empty list, so a script that reaches nothing is locked down by them.
pub fn flags(accesses: &[Access]) -> Vec<(&'static str, Vec<String>)> {
    let mut flags: Vec<(&'static str, Vec<String>)> =
        ["--allow-net", "--allow-read", "--allow-env"]
            .into_iter()
            .map(|f| (f, Vec::new()))
            .collect();
    for access in accesses {
        let (flag, entry) = access.entry();
        let list = &mut flags
            .iter_mut()
            .find(|(f, _)| *f == flag)
            .expect("a known flag")
            .1;
        if !list.contains(&entry) {
            list.push(entry);
        }
    }
    flags
}

/// What a call of `f` with these arguments reaches; `None` for an argument it needs that is
/// not known (a variable, for `check --permissions`) or cannot be read.
pub fn accesses(
    f: &crate::host::decl::HostFn,
    args: &[Option<rhai::Dynamic>],
) -> Option<Vec<Access>> {
    use crate::host::decl::Reach;
    let text = |i: usize| -> Option<String> { args.get(i)?.as_ref()?.clone().into_string().ok() };
    // A `unix_socket` option, given literally, replaces the URL's host.
    if f.options.iter().any(|o| o.key == "unix_socket") {
        if let Some(Some(options)) = args.last().filter(|_| args.len() > 1) {
            if let Some(map) = options.clone().try_cast::<rhai::Map>() {
                if let Some(path) = map.get("unix_socket") {
                    let path = path.clone().into_string().ok()?;
                    return Some(vec![Access::Unix(PathBuf::from(path))]);
                }
            }
        }
    }
    Some(match f.reach {
        Reach::Nothing => Vec::new(),
        Reach::Url(i) => {
            let url = text(i)?;
            let (host, port) = url_endpoint(&url)?;
            vec![Access::Net(host, Some(port))]
        }
        Reach::HostPort(h, p) => {
            let host = text(h)?;
            let port = args.get(p)?.as_ref()?.as_int().ok()?;
            let host = host.trim().trim_start_matches('[').trim_end_matches(']');
            vec![Access::Net(host.to_string(), u16::try_from(port).ok())]
        }
        Reach::Name(i) => vec![Access::Net(
            text(i)?
                .trim()
                .trim_start_matches('[')
                .trim_end_matches(']')
                .to_string(),
            None,
        )],
        Reach::Dsn(i) => {
            let dsn = crate::host::sql::dsn::parse(&text(i)?).ok()?;
            dsn.targets
                .iter()
                .map(|t| match t {
                    crate::host::sql::dsn::Target::Tcp(host, port) => {
                        Access::Net(host.clone(), Some(*port))
                    }
                    crate::host::sql::dsn::Target::Socket(path, port) => {
                        let path = Path::new(path);
                        Access::Unix(match dsn.kind {
                            crate::host::sql::dsn::Kind::Postgres => {
                                path.join(format!(".s.PGSQL.{port}"))
                            }
                            crate::host::sql::dsn::Kind::MySql => path.to_path_buf(),
                        })
                    }
                })
                .collect()
        }
        Reach::Path(i) => vec![Access::Read(PathBuf::from(text(i)?))],
        Reach::Env(i) => vec![Access::Env(text(i)?)],
        Reach::Target(i) => vec![match crate::host::grpc::endpoint(&text(i)?)? {
            crate::host::grpc::Endpoint::Tcp(host, port) => Access::Net(host, Some(port)),
            crate::host::grpc::Endpoint::Unix(path) => Access::Unix(path),
        }],
    })
}

/// The host and port a URL of any scheme a function takes names.
fn url_endpoint(url: &str) -> Option<(String, u16)> {
    use crate::host::wire::{Scheme, Url};
    const HTTP: &[Scheme] = &[
        Scheme {
            prefix: "http://",
            tls: false,
            port: 80,
        },
        Scheme {
            prefix: "https://",
            tls: true,
            port: 443,
        },
    ];
    std::iter::once(HTTP)
        .chain(crate::host::broker::PROTOCOLS.iter().map(|p| p.schemes))
        .find_map(|schemes| Url::parse(url, schemes, "").ok())
        .map(|u| (u.host, u.port))
}

impl Permissions {
    /// Whether `access` is allowed, as far as its name tells (no lookup: for stubbed calls).
    pub fn check(&self, access: &Access) -> Result<(), String> {
        match access {
            Access::Net(host, port) => self.check_name(host, *port),
            Access::Unix(path) => self.check_unix(path),
            Access::Read(path) => self.check_read(path),
            Access::Env(name) => self.check_env(name),
        }
    }
}

/// The checks each way the world is reached; all pass when no flag was given.
pub fn name(host: &str, port: Option<u16>) -> Result<(), String> {
    granted().map_or(Ok(()), |p| p.check_name(host, port))
}

/// The addresses that may be reached of those `host` resolved to (all, without flags).
pub fn addrs(host: &str, addrs: Vec<SocketAddr>) -> Result<Vec<SocketAddr>, String> {
    match granted() {
        None => Ok(addrs),
        Some(p) => p.allowed_addrs(host, &addrs),
    }
}

/// Every address `host` resolved to may be reached (for a driver that picks among them).
pub fn all_addrs(host: &str, addrs: &[SocketAddr]) -> Result<(), String> {
    granted().map_or(Ok(()), |p| p.check_addrs(host, addrs))
}

pub fn unix(path: &Path) -> Result<(), String> {
    granted().map_or(Ok(()), |p| p.check_unix(path))
}

pub fn read(path: &Path) -> Result<(), String> {
    granted().map_or(Ok(()), |p| p.check_read(path))
}

pub fn env(var: &str) -> Result<(), String> {
    granted().map_or(Ok(()), |p| p.check_env(var))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn perms(net: &str, read: Option<&str>, env: Option<&str>) -> Permissions {
        Given {
            net: Some(vec![net.into()]),
            read: read.map(|r| vec![r.into()]),
            env: env.map(|e| vec![e.into()]),
        }
        .parse()
        .unwrap()
        .unwrap()
    }

    #[test]
    fn names_suffixes_addresses_blocks_and_ports() {
        let p = perms(
            "127.0.0.1,db:5432,*.svc.cluster.local,10.0.0.0/8:443,[::1]:8080",
            None,
            None,
        );
        assert!(p.check_name("127.0.0.1", Some(9)).is_ok());
        assert!(p.check_name("db", Some(5432)).is_ok());
        assert!(p.check_name("DB.", Some(5432)).is_ok());
        assert!(p.check_name("db", Some(5433)).is_err());
        assert!(p.check_name("api.ns.svc.cluster.local", Some(80)).is_ok());
        assert!(p.check_name("svc.cluster.local", Some(80)).is_err());
        assert!(p.check_name("evilsvc.cluster.local", Some(80)).is_err());
        assert!(p.check_name("10.1.2.3", Some(443)).is_ok());
        assert!(p.check_name("10.1.2.3", Some(80)).is_err());
        assert!(p.check_name("11.0.0.1", Some(443)).is_err());
        assert!(p.check_name("[::1]", Some(8080)).is_ok());
        assert!(p.check_name("::1", Some(8081)).is_err());
        // dns_resolve asks for no port: a name allowed on some port may be looked up.
        assert!(p.check_name("db", None).is_ok());
        let e = p.check_name("203.0.113.9", Some(80)).unwrap_err();
        assert_eq!(
            e,
            "to 203.0.113.9:80 is not allowed by --allow-net (127.0.0.1,db:5432,*.svc.cluster.local,10.0.0.0/8:443,[::1]:8080)"
        );
        // A name allowed, resolving outside every address and block: denied.
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        assert!(p.allowed_addrs("db", &[addr("10.0.0.5:5432")]).is_err());
        assert!(p.allowed_addrs("db", &[addr("127.0.0.1:5432")]).is_ok());
        // Only the allowed addresses are kept; a driver that picks for itself needs all.
        let both = [addr("10.9.9.9:443"), addr("169.254.169.254:443")];
        assert_eq!(p.allowed_addrs("api", &both).unwrap(), [both[0]]);
        let e = p.check_addrs("api", &both).unwrap_err();
        assert!(e.contains("it resolved to 169.254.169.254:443 too"), "{e}");
        let e = p.allowed_addrs("api", &both[1..]).unwrap_err();
        assert!(
            e.contains("(it resolved to 169.254.169.254:443) is not allowed"),
            "{e}"
        );
        // Names only: an allowed name resolves where it does.
        let names = perms("db", None, None);
        assert!(names.check_addrs("db", &[addr("10.0.0.5:5432")]).is_ok());
        assert!(perms("*", None, None)
            .check_name("anything", Some(1))
            .is_ok());
        assert!(perms("*:443", None, None)
            .check_name("x", Some(80))
            .is_err());
    }

    #[test]
    fn kinds_not_given_are_denied_once_one_is() {
        let p = perms("127.0.0.1", None, Some("APP_*,HOME"));
        assert!(p.check_env("APP_URL").is_ok());
        assert!(p.check_env("HOME").is_ok());
        assert!(p.check_env("HOMER").is_err());
        assert!(p
            .check_read(Path::new("/etc/hostname"))
            .unwrap_err()
            .contains("no --allow-read was given"));
        let empty = perms("", None, None);
        assert!(empty
            .check_name("127.0.0.1", Some(80))
            .unwrap_err()
            .contains("--allow-net is empty"));
        assert!(Given::default().parse().unwrap().is_none());
    }

    #[test]
    fn bad_entries_say_what_is_expected() {
        let bad = |net: &str| {
            Given {
                net: Some(vec![net.into()]),
                ..Given::default()
            }
            .parse()
            .unwrap_err()
        };
        assert!(bad("db:99999").contains("port '99999'"));
        assert!(bad("10.0.0.0/33").contains("prefix length"));
        assert!(bad("unix:run/x").contains("absolute path"));
        assert!(bad("a*b").contains("expected HOST[:PORT]"));
    }

    #[test]
    fn blocks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(in_block(ip("10.255.0.1"), ip("10.0.0.0"), 8));
        assert!(!in_block(ip("11.0.0.1"), ip("10.0.0.0"), 8));
        assert!(in_block(ip("1.2.3.4"), ip("0.0.0.0"), 0));
        assert!(in_block(ip("::ffff:10.0.0.1"), ip("10.0.0.0"), 8));
        assert!(in_block(ip("fd00::1"), ip("fd00::"), 8));
        assert!(!in_block(ip("fe80::1"), ip("fd00::"), 8));
    }
}

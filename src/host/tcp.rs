//! `tcp_open`: can a TCP connection be made? kubelet's `tcpSocket` probe, from a script.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs, UdpSocket},
    rc::Rc,
    sync::{mpsc, OnceLock},
    time::{Duration, Instant},
};

use rhai::{Engine, Map, NativeCallContext, INT};

use super::{
    decl::{Fails, HostFn, Stub, Time, TIMEOUT, TIMEOUT_MS},
    options::Options,
    Host, HostError, RhaiResult,
};
use crate::trace::Outcome;

pub const FUNCTIONS: &[HostFn] = &[TCP_OPEN, DNS_RESOLVE];

pub const TCP_OPEN: HostFn = HostFn {
    name: "tcp_open",
    signatures: &[
        "tcp_open(host: string, port: int) -> bool",
        "tcp_open(host: string, port: int, options: map) -> bool",
    ],
    summary: "true when a TCP connection to host:port is accepted within the timeout",
    options: &[TIMEOUT, TIMEOUT_MS],
    keys: &[],
    fails: Fails::False,
    time: Time::Network,
    secrets: &[],
    stub: Stub::Answer {
        example: "true",
        failing: "false",
    },
    reach: crate::host::decl::Reach::HostPort(0, 1),
    register: register_tcp_open,
};

pub const DNS_RESOLVE: HostFn = HostFn {
    name: "dns_resolve",
    signatures: &["dns_resolve(host: string) -> array"],
    summary:
        "the addresses a host name resolves to, as strings; throws (naming it) when it does not",
    options: &[],
    keys: &[],
    fails: Fails::Throws,
    time: Time::Network,
    secrets: &[],
    stub: Stub::Answer {
        example: "[\"10.0.0.7\"]",
        failing: "[]",
    },
    reach: crate::host::decl::Reach::Name(0),
    register: register_dns_resolve,
};

/// `tcp_open(host, port)`, `tcp_open(host, port, #{timeout})` → bool
///
/// `true` when a TCP connection is accepted within the timeout (then closed at once); `false`
/// when refused, unreachable, not resolved or timed out, with the reason in the call trace.
/// Host names resolve (every address is tried in order; `localhost` is the loopback addresses
/// without a lookup); IPv6 literals work with or without brackets. A script fault for an empty
/// host or a port outside 1-65535.
fn tcp_open(
    host: &Host,
    ctx: &NativeCallContext,
    name: &str,
    port: INT,
    options: Options,
) -> RhaiResult<bool> {
    let port_ok = u16::try_from(port).ok().filter(|p| *p != 0);
    let name = name.trim();
    let bare = name.trim_start_matches('[').trim_end_matches(']');
    let what = match bare.parse::<IpAddr>() {
        Ok(IpAddr::V6(_)) => format!("TCP [{bare}]:{port}"),
        _ => format!("TCP {bare}:{port}"),
    };
    let timeout = options
        .timeout()
        .map_err(|e| e.into_fault("tcp_open", ctx))?;
    if bare.is_empty() {
        return Err(HostError::Fault("host is empty".into()).into_fault("tcp_open", ctx));
    }
    let Some(port) = port_ok else {
        let message = format!("port {port} is out of range 1-65535");
        return Err(HostError::Fault(message).into_fault("tcp_open", ctx));
    };
    host.call(ctx, &TCP_OPEN, &[], what, timeout, |budget| {
        let started = Instant::now();
        let addrs = match resolve(bare, port, budget) {
            Ok(addrs) => addrs,
            Err(reason) => return Ok((false, Outcome::Fail(reason))),
        };
        let mut last = String::from("no address");
        for addr in addrs {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                last = format!("timed out after {}", crate::deadline::human(budget));
                break;
            }
            match TcpStream::connect_timeout(&addr, left) {
                Ok(_) => return Ok((true, Outcome::Pass("connected".into()))),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    last = format!("timed out after {}", crate::deadline::human(budget));
                }
                Err(e) => last = super::io_reason(&e),
            }
        }
        Ok((false, Outcome::Fail(last)))
    })
}

/// `dns_resolve(host)` → the addresses, in the resolver's order, without duplicates.
fn dns_resolve(host: &Host, ctx: &NativeCallContext, name: &str) -> RhaiResult<rhai::Array> {
    let name = name.trim().trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() {
        return Err(HostError::Fault("host is empty".into()).into_fault("dns_resolve", ctx));
    }
    host.call(
        ctx,
        &DNS_RESOLVE,
        &[],
        format!("dns_resolve({name})"),
        None,
        |budget| {
            // A lookup reaches the resolver, not the host: only the name is checked.
            crate::permissions::name(name, None).map_err(HostError::Denied)?;
            // What the system resolver answers, `localhost` included: this checks resolution.
            let addrs = lookup(name, 0, budget).map_err(HostError::Transport)?;
            let mut seen: Vec<String> = Vec::new();
            for addr in addrs {
                let ip = addr.ip().to_string();
                if !seen.contains(&ip) {
                    seen.push(ip);
                }
            }
            let shown = seen.join(", ");
            Ok((
                seen.into_iter().map(rhai::Dynamic::from).collect(),
                Outcome::Pass(shown),
            ))
        },
    )
}

/// The addresses to connect to for `host:port`, within `budget`: [`without_lookup`] when it
/// knows them, else [`lookup`].
///
/// The one place TCP targets are resolved, so the one place `--allow-net` checks them: the
/// name before any lookup, the addresses after (`crate::permissions`).
pub fn resolve(host: &str, port: u16, budget: Duration) -> Result<Vec<SocketAddr>, String> {
    crate::permissions::name(host, Some(port))?;
    let addrs = match without_lookup(host) {
        Some(ips) => ips
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect(),
        None => lookup(host, port, budget)?,
    };
    crate::permissions::addrs(host, addrs)
}

/// The addresses of `host` when no lookup is needed: an IP literal, or `localhost` (see
/// [`loopback`]). The one place that decides it, for `tcp_open`, `http_get` and `redis_ping`.
pub fn without_lookup(host: &str) -> Option<Vec<IpAddr>> {
    match host.parse::<IpAddr>() {
        Ok(ip) => Some(vec![ip]),
        Err(_) => loopback(host),
    }
}

/// `localhost` and names under it (`*.localhost`, any case, with or without the final dot) are
/// the loopback addresses, 127.0.0.1 then ::1, without asking the resolver: RFC 6761 (6.3) lets
/// resolvers answer them so, and curl does. A probe mostly checks its own pod through
/// `localhost`, and a lookup costs a helper thread (getaddrinfo takes no timeout) and the
/// hosts file. The addresses are tried in turn, so a server listening on `::1` alone is found;
/// `::1` is left out where the host has no IPv6 loopback (IPv6 disabled), or a port nothing
/// listens on would be reported as "address not available" instead of "connection refused".
fn loopback(host: &str) -> Option<Vec<IpAddr>> {
    let name = host.strip_suffix('.').unwrap_or(host).as_bytes();
    let suffix = b"localhost";
    let is_loopback = name.len() >= suffix.len()
        && name[name.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
        && (name.len() == suffix.len() || name[name.len() - suffix.len() - 1] == b'.');
    if !is_loopback {
        return None;
    }
    let mut ips = vec![IpAddr::from(Ipv4Addr::LOCALHOST)];
    if has_ipv6_loopback() {
        ips.push(IpAddr::from(Ipv6Addr::LOCALHOST));
    }
    Some(ips)
}

/// Whether this host has the address ::1 (`net.ipv6.conf.lo.disable_ipv6`, or a kernel without
/// IPv6, remove it). Asked once per process, by binding a UDP socket to it: no packet is sent.
fn has_ipv6_loopback() -> bool {
    static HAS: OnceLock<bool> = OnceLock::new();
    *HAS.get_or_init(|| UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_ok())
}

/// Resolve `host:port` through the system resolver within `budget`, on a helper thread because
/// `getaddrinfo` cannot be given a timeout. IP literals need no lookup.
pub fn lookup(host: &str, port: u16, budget: Duration) -> Result<Vec<SocketAddr>, String> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let (tx, rx) = mpsc::channel();
    let target = (host.to_string(), port);
    std::thread::spawn(move || {
        let _ = tx.send(target.to_socket_addrs().map(|a| a.collect::<Vec<_>>()));
    });
    match rx.recv_timeout(budget) {
        Ok(Ok(addrs)) if !addrs.is_empty() => Ok(addrs),
        Ok(Ok(_)) => Err(format!("{host} resolved to no address")),
        Ok(Err(e)) => Err(format!("cannot resolve {host}: {e}")),
        Err(_) => Err(format!(
            "resolving {host} timed out after {}",
            crate::deadline::human(budget)
        )),
    }
}

fn register_dns_resolve(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn("dns_resolve", move |ctx: NativeCallContext, name: &str| {
        dns_resolve(&h, &ctx, name)
    });
}

fn register_tcp_open(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "tcp_open",
        move |ctx: NativeCallContext, name: &str, port: INT| {
            tcp_open(&h, &ctx, name, port, Options::none())
        },
    );
    let h = host.clone();
    engine.register_fn(
        "tcp_open",
        move |ctx: NativeCallContext, name: &str, port: INT, options: Map| {
            let options =
                Options::new(&options, &TCP_OPEN).map_err(|e| e.into_fault("tcp_open", &ctx))?;
            tcp_open(&h, &ctx, name, port, options)
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn localhost_names_are_loopback_without_a_lookup() {
        let mut both = vec![IpAddr::from(Ipv4Addr::LOCALHOST)];
        if UdpSocket::bind("[::1]:0").is_ok() {
            both.push(IpAddr::from(Ipv6Addr::LOCALHOST));
        }
        for name in [
            "localhost",
            "LocalHost",
            "localhost.",
            "app.localhost",
            "a.b.LOCALHOST.",
        ] {
            assert_eq!(loopback(name).as_ref(), Some(&both), "{name}");
        }
        for name in [
            "notlocalhost",
            "localhost.example",
            "localhost..",
            "",
            "local",
            "127.0.0.1",
        ] {
            assert_eq!(loopback(name), None, "{name}");
        }
        let addrs = resolve("localhost", 8080, Duration::from_millis(1)).unwrap();
        assert_eq!(addrs[0], "127.0.0.1:8080".parse::<SocketAddr>().unwrap());
        assert_eq!(addrs.len(), both.len());
    }
}

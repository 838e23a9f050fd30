//! `rhai-probe serve`: its arguments and the `FromStr` newtypes behind them (the listen address,
//! `NAME=SCRIPT`, the cache age). Kept apart from the exec-probe flags, which every `run` parses.

use std::{
    net::{Ipv4Addr, SocketAddr},
    path::PathBuf,
    str::FromStr,
    time::Duration,
};

use clap::Args;

use super::{LogArgs, Timeout, VarArgs};

/// What `serve --help` ends with.
pub const SERVE_HELP: &str = "\
Routes (GET and HEAD only):
  /probe/NAME   200 when the probe is healthy, 503 otherwise; the verdict line as the body
                (JSON with Accept: application/json)
  /livez        the probe named liveness   (when there is one)
  /readyz       the probe named readiness  (when there is one)
  /startupz     the probe named startup    (when there is one)
  /metrics      Prometheus metrics (OpenMetrics text)
  /             the status page: every probe's verdict, age, reason and last verdicts (HTML
                for a browser, JSON with Accept: application/json, else plain text); it only
                reads, it never starts an evaluation
  /explain/NAME the calls of the probe's last evaluation, as `rhai-probe explain` prints them

Exit codes:
  0   stopped by SIGTERM after finishing the requests in flight
  1   cannot start: the address cannot be bound, a script cannot be read, no probe found
  64  usage: bad command line (no --probe and no --dir, among others)

Examples:
  rhai-probe serve --listen 0.0.0.0:8099 --dir /etc/rhai-probe
  rhai-probe serve --listen 127.0.0.1:8099 --probe liveness=live.rhai --cache 2s";

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("scripts").required(true).multiple(true).args(["probes", "dir"])))]
pub struct ServeArgs {
    /// The address to listen on: 0.0.0.0:8099, [::]:8099, 127.0.0.1:8099, or :8099 (all IPv4
    /// addresses). kubelet's httpGet probes connect to the pod's IP, so in a pod listen on 0.0.0.0.
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Listen,

    /// A probe: NAME=SCRIPT, or just SCRIPT (named after the file: liveness.rhai → liveness).
    /// Repeatable.
    #[arg(long = "probe", value_name = "NAME=SCRIPT")]
    pub probes: Vec<ProbeSpec>,

    /// A directory of probes, one per *.rhai file, named after the file (a mounted ConfigMap).
    /// Files added to or removed from it later are picked up within a second.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,

    /// Serve a result younger than this without evaluating again; it is also the oldest result
    /// ever served. 0 evaluates on every request (concurrent requests still share one evaluation).
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub cache: CacheAge,

    /// Each evaluation's deadline, as `run --timeout`. Keep it below the httpGet probe's
    /// timeoutSeconds.
    #[arg(
        long,
        env = "RHAI_PROBE_TIMEOUT",
        default_value = "800ms",
        value_name = "DURATION"
    )]
    pub timeout: Timeout,

    #[command(flatten)]
    pub vars: VarArgs,

    #[command(flatten)]
    pub allow: super::AllowArgs,

    #[command(flatten)]
    pub log: LogArgs,
}

/// `--listen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Listen(pub SocketAddr);

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let hint = "use ADDR:PORT, e.g. 0.0.0.0:8099, 127.0.0.1:8099, [::]:8099 or :8099";
        // `:PORT` (every IPv4 address) and `localhost:PORT`, which SocketAddr does not parse.
        for (prefix, ip) in [
            (":", Ipv4Addr::UNSPECIFIED),
            ("localhost:", Ipv4Addr::LOCALHOST),
        ] {
            if let Some(port) = t.strip_prefix(prefix) {
                let port: u16 = port
                    .parse()
                    .map_err(|_| format!("invalid --listen '{text}': bad port; {hint}"))?;
                return Ok(Listen(SocketAddr::from((ip, port))));
            }
        }
        t.parse()
            .map(Listen)
            .map_err(|_| format!("invalid --listen '{text}': {hint}"))
    }
}

/// `--probe NAME=SCRIPT` or `--probe SCRIPT`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeSpec {
    pub name: String,
    pub path: PathBuf,
}

impl ProbeSpec {
    /// A probe name: what goes into `/probe/NAME` and the `probe` label.
    pub fn valid_name(name: &str) -> bool {
        !name.is_empty()
            && name.len() <= 64
            && !name.starts_with('.')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    }

    /// The name a script file gives its probe: `liveness.rhai` → `liveness`.
    pub fn name_of(path: &std::path::Path) -> Option<String> {
        let stem = path.file_stem()?.to_str()?;
        Self::valid_name(stem).then(|| stem.to_string())
    }
}

impl FromStr for ProbeSpec {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let rule = "letters, digits, '_', '-' and '.', not starting with '.', at most 64";
        match text.split_once('=') {
            Some((name, path)) => {
                if !Self::valid_name(name) {
                    return Err(format!("invalid --probe name '{name}': use {rule}"));
                }
                if path.is_empty() {
                    return Err(format!(
                        "invalid --probe '{text}': no script; use NAME=SCRIPT, e.g. liveness=/etc/probes/liveness.rhai"
                    ));
                }
                Ok(ProbeSpec {
                    name: name.to_string(),
                    path: PathBuf::from(path),
                })
            }
            None => {
                let path = PathBuf::from(text);
                let name = Self::name_of(&path).ok_or_else(|| {
                    format!(
                        "invalid --probe '{text}': cannot name a probe after this file ({rule}); use NAME=SCRIPT"
                    )
                })?;
                Ok(ProbeSpec { name, path })
            }
        }
    }
}

/// `--cache`: a duration as `--timeout` takes it, or 0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CacheAge(pub Duration);

impl FromStr for CacheAge {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let number = t.trim_end_matches(|c: char| c.is_ascii_alphabetic());
        let unit = &t[number.len()..];
        if matches!(unit, "" | "s" | "ms" | "m") && number.parse::<f64>().is_ok_and(|n| n == 0.0) {
            return Ok(CacheAge(Duration::ZERO));
        }
        text.parse::<Timeout>().map(|t| CacheAge(t.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses() {
        let l = |t: &str| t.parse::<Listen>().map(|l| l.0.to_string());
        assert_eq!(l(":8099").unwrap(), "0.0.0.0:8099");
        assert_eq!(l("127.0.0.1:1").unwrap(), "127.0.0.1:1");
        assert_eq!(l("[::1]:80").unwrap(), "[::1]:80");
        assert_eq!(l("localhost:80").unwrap(), "127.0.0.1:80");
        for bad in ["", "8099", ":", ":99999", "host:80", "1.2.3.4"] {
            assert!(l(bad).unwrap_err().contains("e.g. 0.0.0.0:8099"), "{bad}");
        }
    }

    #[test]
    fn probe_specs() {
        let p = |t: &str| t.parse::<ProbeSpec>();
        let spec = p("live=/etc/p/l.rhai").unwrap();
        assert_eq!(
            (spec.name.as_str(), spec.path.to_str()),
            ("live", Some("/etc/p/l.rhai"))
        );
        assert_eq!(p("scripts/readiness.rhai").unwrap().name, "readiness");
        for bad in [
            "=x.rhai",
            "a b=x",
            ".x=y",
            "a/b=c",
            "x=",
            "/etc/.hidden.rhai",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cache_ages() {
        let c = |t: &str| t.parse::<CacheAge>().map(|c| c.0.as_millis());
        assert_eq!(c("0").unwrap(), 0);
        assert_eq!(c("0s").unwrap(), 0);
        assert_eq!(c("1s").unwrap(), 1000);
        assert_eq!(c("250ms").unwrap(), 250);
        assert!(c("-1").is_err());
        assert!(c("soon").is_err());
        assert!(c("0x").is_err());
    }
}

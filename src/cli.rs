//! The command line as typed (clap derive), and the `FromStr` newtypes that give bad values a
//! human error. Turning these raw arguments into a run happens in `main::run`; nothing here does I/O.

use std::{fmt, path::PathBuf, str::FromStr, time::Duration};

use clap::{Args, Parser, Subcommand, ValueEnum};

pub mod serve;

/// The exit-code table shown by `--help`; a unit test keeps it equal to `Exit::ALL`. A macro, so
/// that `run --help` can join it to its examples at compile time (`run` parses on every probe).
macro_rules! exit_help {
    () => {
        "\
Exit codes:
  0   healthy: the script returned true
  1   unhealthy: the script returned false or a named check failed
  2   check error: an uncaught error while checking (transport failure, throw)
  3   script fault: unreadable, does not compile, hit a sandbox limit, or did not return a boolean
  4   deadline: the deadline passed before the script finished
  64  usage: bad command line
  124 timed out: wait's --for ended before the targets were healthy
  143 terminated: SIGTERM arrived before the script finished"
    };
}
pub const EXIT_HELP: &str = exit_help!();

/// `--version`: the package version and the commit it was built from (see build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("RHAI_PROBE_COMMIT"),
    ")"
);

#[derive(Parser, Debug)]
#[command(
    name = "rhai-probe",
    version = VERSION,
    about = "Kubernetes exec probes written in Rhai: run a script, exit with a code kubelet trusts",
    after_help = EXIT_HELP
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    /// Parse the command line. `run` — what kubelet starts every period — is parsed with its own
    /// arguments only: building clap's whole command tree (every subcommand, every flag) costs
    /// about a tenth of a `true` probe's instructions. Everything else goes through the full tree.
    pub fn parse_args() -> Result<Cli, clap::Error> {
        use clap::FromArgMatches;
        let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
        if args.get(1).is_some_and(|a| a == "run") {
            let mut command = RunArgs::augment_args(
                clap::Command::new("run")
                    .bin_name("rhai-probe run")
                    .about(RUN_ABOUT)
                    .override_usage(RUN_USAGE)
                    .after_help(RUN_HELP),
            );
            // The --allow-* flags are known to clap only when the command line may hold one
            // (or asks for help): three more flags cost every `run` ~4,000 instructions of
            // clap's parsing, for flags most probes never give.
            let allow = args[2..].iter().any(|a| {
                let a = a.as_encoded_bytes();
                a.starts_with(b"--allow") || a == b"-h" || a == b"--help"
            });
            if allow {
                command = AllowArgs::augment_args(command);
            }
            let matches = command.try_get_matches_from(&args[1..])?;
            let mut run = RunArgs::from_arg_matches(&matches)?;
            if allow {
                run.allow = AllowArgs::from_arg_matches(&matches)?;
            }
            return Ok(Cli {
                command: Command::Run(run),
            });
        }
        // `explain` shares `run`'s arguments, and takes the --allow-* flags as it always.
        let command = <Cli as clap::CommandFactory>::command()
            .mut_subcommand("explain", AllowArgs::augment_args);
        let matches = command.try_get_matches_from(args)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        if let (Command::Explain(run), Some(("explain", sub))) =
            (&mut cli.command, matches.subcommand())
        {
            run.allow = AllowArgs::from_arg_matches(sub)?;
        }
        Ok(cli)
    }
}

const RUN_USAGE: &str = "rhai-probe run [OPTIONS] <SCRIPT|--eval <EXPR>>";
const EXPLAIN_USAGE: &str = "rhai-probe explain [OPTIONS] <SCRIPT|--eval <EXPR>>";

const RUN_ABOUT: &str =
    "Run a probe script and exit with its verdict (one line on stdout, logs on stderr).";

/// Examples at the end of each subcommand's `--help`.
const RUN_HELP: &str = concat!(
    exit_help!(),
    "

Examples:
  rhai-probe run /etc/rhai-probe/liveness.rhai --timeout 1500ms --log-file /proc/1/fd/1
  rhai-probe run probe.rhai --var url=http://127.0.0.1:8080/health --format json"
);
const EXPLAIN_EXAMPLES: &str = "\
Examples:
  rhai-probe explain probe.rhai --var url=http://127.0.0.1:8080/health
  kubectl port-forward svc/app 8080 & rhai-probe explain liveness.rhai --timeout 2s";
const TEST_EXAMPLES: &str = "\
Examples:
  rhai-probe test --init probe.rhai > probe.cases.toml   # a first cases file
  rhai-probe test probe.rhai                             # reads probe.cases.toml
  rhai-probe test probe.rhai --format junit > report.xml # for a CI test report";
const CHECK_EXAMPLES: &str = "\
Examples:
  rhai-probe check scripts/*.rhai
  rhai-probe check probe.rhai --format json";
const FUNCTIONS_EXAMPLES: &str = "\
Examples:
  rhai-probe functions
  rhai-probe functions --format json";
const DEFS_EXAMPLES: &str = "\
Examples:
  rhai-probe defs --out .rhai     # .rhai/rhai-probe.d.rhai, for a Rhai language server
  rhai-probe defs > rhai-probe.d.rhai";
const WAIT_EXAMPLES: &str = concat!(
    exit_help!(),
    "

Examples:
  rhai-probe wait postgres://app:$PW@db:5432/app redis://cache:6379 --for 2m
  rhai-probe wait tcp://db:5432 -- /app/server --port 8080      # then exec the command
  rhai-probe wait -e 'http_get(\"http://api:8080/health\").status == 200' --interval 500ms"
);
const INSTALL_EXAMPLES: &str = "\
Examples:
  rhai-probe install /shared/bin   # in an init container, with an emptyDir at /shared/bin";

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a probe script and exit with its verdict (one line on stdout, logs on stderr).
    #[command(after_help = RUN_HELP, override_usage = RUN_USAGE)]
    Run(RunArgs),
    /// Run a probe and report every call, check and the verdict, for a person.
    ///
    /// Every host call in order with its arguments (secrets masked), result, duration and
    /// position; the named checks; the value; the verdict; the time against the deadline. The
    /// same options and exit code as `run`.
    #[command(after_help = format!("{EXIT_HELP}\n\n{EXPLAIN_EXAMPLES}"), override_usage = EXPLAIN_USAGE)]
    Explain(RunArgs),
    /// Run a script against stubbed cases from a .cases.toml file: no network, no clock.
    ///
    /// Every function that reads the world answers as the case says. Prints a line per case
    /// and `N passed, M failed`. Exits 0 when every case gets the verdict it expects, 1 when
    /// one does not, 3 when the script or the cases file cannot be read. The format is in
    /// docs/testing.md.
    #[command(after_help = TEST_EXAMPLES)]
    Test(TestArgs),
    /// Compile and lint scripts without running them (for CI, before a ConfigMap rolls out).
    ///
    /// Finds syntax errors, unknown functions, wrong argument counts, literal arguments and
    /// options of the wrong type, unknown option keys, keys a host result does not have,
    /// loops that never end, and endings that are not a boolean. Prints every problem as
    /// path:line:col with the source line; exits 0 when every script passes, 3 otherwise.
    #[command(after_help = CHECK_EXAMPLES)]
    Check(CheckArgs),
    /// List every function a probe script can call, with its signatures.
    ///
    /// With a line on what each does, from the functions' declarations, which the engine,
    /// the lint and the test stubs read too, so it cannot drift from the code.
    #[command(after_help = FUNCTIONS_EXAMPLES)]
    Functions(FunctionsArgs),
    /// Write Rhai definitions (.d.rhai) of every host function, for editors.
    ///
    /// The format Rhai's `Engine::definitions()` writes and Rhai language servers read: one
    /// `fn` per signature, with its doc line.
    #[command(after_help = DEFS_EXAMPLES)]
    Defs(DefsArgs),
    /// Retry targets until they are healthy, then exit 0 or run a command (init containers,
    /// compose, entrypoints).
    ///
    /// TARGETs are scripts, URL targets (http://, tcp://HOST:PORT, postgres://, mysql://,
    /// redis://, amqp://, nats://, …) or -e EXPR; all are checked in parallel, each until it is healthy. Progress
    /// on stderr when a target's state or reason changes; the verdict on stdout. Exits 0 when
    /// healthy (or runs COMMAND in place of this process), 124 when --for ends first, 3 at once
    /// for a script fault, 143 on SIGTERM. Details: docs/wait.md.
    #[command(after_help = WAIT_EXAMPLES)]
    Wait(WaitArgs),
    /// Copy this binary into DIR (an init container filling an emptyDir).
    ///
    /// Writes DIR/rhai-probe (mode 0755) through a temporary file and a rename, so the app's
    /// image needs no rebuild and this image no shell. Exits 0 when copied, 1 when it could
    /// not be (the reason on stderr).
    #[command(after_help = INSTALL_EXAMPLES)]
    Install(InstallArgs),
    /// Answer HTTP health checks (kubelet's httpGet probes) from probe scripts, with /metrics and a status page.
    ///
    /// A long-lived sidecar: each probe's script is compiled once; a request evaluates it
    /// unless a result younger than --cache exists, and concurrent requests share one
    /// evaluation. Scripts are recompiled when their file changes (a ConfigMap update
    /// included); a script that no longer compiles keeps the last good version running.
    /// At least one --probe or --dir. Details: docs/serve.md.
    #[command(after_help = serve::SERVE_HELP)]
    Serve(serve::ServeArgs),
}

#[derive(Args, Debug)]
pub struct TestArgs {
    /// The probe script.
    #[arg(value_name = "SCRIPT")]
    pub script: PathBuf,

    /// The cases; default: the script's path with .cases.toml for .rhai (liveness.cases.toml).
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,

    /// Print a first cases file for the script on stdout (a healthy case and a failing one,
    /// with a stub for every function it calls that reads the world), and run nothing.
    #[arg(long)]
    pub init: bool,

    /// How to report: a line per case, JSON, or JUnit XML for CI test reports.
    #[arg(long, value_enum, default_value_t = TestFormat::Text)]
    pub format: TestFormat,

    /// Each case's deadline (the stubs answer at once; a `hangs` stub waits for it).
    #[arg(long, default_value = "800ms", value_name = "DURATION")]
    pub timeout: Timeout,

    #[command(flatten)]
    pub vars: VarArgs,

    #[command(flatten)]
    pub allow: AllowArgs,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["targets", "eval"])))]
pub struct WaitArgs {
    /// Scripts or URL targets to wait for (a path that exists as a file is always the file).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<PathBuf>,

    /// A target given inline (repeatable).
    #[arg(short = 'e', long = "eval", value_name = "EXPR")]
    pub eval: Vec<String>,

    /// The whole wait's budget: when it ends with a target still unhealthy, exit 124.
    #[arg(long = "for", default_value = "60s", value_name = "DURATION")]
    pub budget: Timeout,

    /// Each attempt's deadline, cut to what is left of --for.
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub timeout: Timeout,

    /// The pause after a failed attempt; it doubles after each one, up to --max-interval, with
    /// a tenth of jitter either way.
    #[arg(long, default_value = "1s", value_name = "DURATION")]
    pub interval: Timeout,

    #[arg(long, default_value = "10s", value_name = "DURATION")]
    pub max_interval: Timeout,

    /// Done when any one target is healthy (default: all of them).
    #[arg(long)]
    pub any: bool,

    #[command(flatten)]
    pub vars: VarArgs,

    #[command(flatten)]
    pub allow: AllowArgs,

    #[command(flatten)]
    pub log: LogArgs,

    /// After `--`: the command to exec once healthy (it replaces this process and keeps its PID).
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<std::ffi::OsString>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum TestFormat {
    Text,
    Json,
    /// JUnit XML, which GitLab, Jenkins and GitHub test reporters read.
    Junit,
}

#[derive(Args, Debug)]
pub struct DefsArgs {
    /// Write DIR/rhai-probe.d.rhai instead of printing the definitions.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct FunctionsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ListFormat::Text)]
    pub format: ListFormat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Text,
    Json,
    /// The table at the top of docs/functions.md.
    Markdown,
    /// The table of stubs in docs/testing.md.
    Stubs,
}

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// The directory to copy the binary into (it must exist, e.g. an emptyDir mount).
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

// No clap ArgGroup for "a script or -e": validating one cost every probe run ~9,000
// instructions (6% of a `true` probe); `main::run` says it instead, with the same exit code.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The probe script: a path, - for standard input, or a URL target checked without a
    /// script (http://, https://, tcp://HOST:PORT, postgres://, mysql://, redis://, amqp://,
    /// mqtt://, nats://, memcached://, …). A path that exists as a file is always the file.
    #[arg(value_name = "SCRIPT")]
    pub script: Option<PathBuf>,

    /// The script itself, given inline: -e 'http_get("http://127.0.0.1:8080/health").ok'.
    /// Positions in messages read <eval>:LINE:COL.
    #[arg(short = 'e', long = "eval", value_name = "EXPR")]
    pub eval: Option<String>,

    /// The whole probe's deadline: 500ms, 2s, 1m; a bare number is seconds (as timeoutSeconds).
    /// Keep it below the probe's timeoutSeconds so the pod event carries this probe's reason.
    #[arg(
        long,
        env = "RHAI_PROBE_TIMEOUT",
        default_value = "800ms",
        value_name = "DURATION"
    )]
    pub timeout: Timeout,

    #[command(flatten)]
    pub vars: VarArgs,

    /// Where a script keeps what it needs from earlier runs (check grace and failures, rate,
    /// remember, history): one small file per probe. In a pod: an emptyDir volume (docs/state.md).
    /// [env: RHAI_PROBE_STATE_DIR=]
    // Read by `RunArgs::state_dir()`, not by clap's `env`: clap's costs every run ~1,600
    // instructions (callgrind), for a flag most probes never give.
    #[arg(long = "state-dir", value_name = "DIR")]
    pub state_dir_flag: Option<PathBuf>,

    /// --allow-*: added to clap by `Cli::parse_args` (see there), not by this derive.
    #[arg(skip)]
    pub allow: AllowArgs,

    /// The verdict's format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    #[command(flatten)]
    pub log: LogArgs,
}

impl RunArgs {
    /// `--state-dir`, else `RHAI_PROBE_STATE_DIR` (an empty value is none).
    pub fn state_dir(&self) -> Option<PathBuf> {
        self.state_dir_flag.clone().or_else(|| {
            std::env::var_os("RHAI_PROBE_STATE_DIR")
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        })
    }
}

// What a probe may reach (`crate::permissions`): `run`, `explain`, `wait`, `serve` and `test`
// share these. (Not a doc comment: clap would show it as every command's description.)
#[derive(Args, Debug, Default, Clone)]
pub struct AllowArgs {
    /// Hosts the script may connect to: HOST[:PORT], *.SUFFIX[:PORT], ADDRESS/BITS,
    /// [IPv6]:PORT, unix:/PATH, * (comma-separated, repeatable). With any --allow-* flag, what
    /// is not allowed is denied. [env: RHAI_PROBE_ALLOW_NET=]
    #[arg(long = "allow-net", value_name = "LIST")]
    pub net: Option<Vec<String>>,

    /// Paths (and what is under them, symlinks resolved) the script may read or look at.
    /// [env: RHAI_PROBE_ALLOW_READ=]
    #[arg(long = "allow-read", value_name = "LIST")]
    pub read: Option<Vec<String>>,

    /// Environment variables env() may read: NAME, PREFIX*, *. [env: RHAI_PROBE_ALLOW_ENV=]
    #[arg(long = "allow-env", value_name = "LIST")]
    pub env: Option<Vec<String>>,
}

impl AllowArgs {
    /// The flags (else their environment variables), parsed and installed for the process.
    pub fn install(&self) -> Result<(), String> {
        let given = crate::permissions::Given {
            net: self.net.clone(),
            read: self.read.clone(),
            env: self.env.clone(),
        }
        .with_env();
        crate::permissions::install(given.parse()?);
        Ok(())
    }
}

// Where log records go and how many: `run`, `explain` and `serve` share these. (Not a doc
// comment: clap would show it as the description of every command that flattens it.)
#[derive(Args, Debug, Default)]
pub struct LogArgs {
    /// Append log records to this file too (/proc/1/fd/1 puts them in `kubectl logs`).
    #[arg(long, value_name = "PATH")]
    pub log_file: Option<PathBuf>,

    /// More log output on stderr: -v for each host call, -vv for debug.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,

    /// Only errors on stderr (run and explain still print the verdict on stdout).
    #[arg(short, long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true).args(["scripts", "eval"])))]
pub struct CheckArgs {
    /// The scripts to compile (URL targets too).
    #[arg(value_name = "SCRIPT")]
    pub scripts: Vec<PathBuf>,

    /// A script given inline (repeatable).
    #[arg(short = 'e', long = "eval", value_name = "EXPR")]
    pub eval: Vec<String>,

    /// How to report the problems: with the source line on stderr, or as JSON on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also print the --allow-net, --allow-read and --allow-env flags the scripts need, from
    /// their literal arguments (and --var values), and which calls could not be told.
    #[arg(long)]
    pub permissions: bool,

    #[command(flatten)]
    pub vars: VarArgs,
}

#[derive(Args, Clone, Debug, Default)]
pub struct VarArgs {
    /// A constant visible in the script as NAME (repeatable). Integers, floats and true/false are
    /// typed; anything else is a string ("quote" a value to force a string).
    #[arg(long = "var", value_name = "NAME=VALUE")]
    pub vars: Vec<Var>,
}

impl VarArgs {
    /// The values as the script sees them.
    pub fn to_map(&self) -> rhai::Map {
        self.vars
            .iter()
            .map(|v| {
                let value = match &v.value {
                    VarValue::Int(i) => (*i).into(),
                    VarValue::Float(f) => (*f).into(),
                    VarValue::Bool(b) => (*b).into(),
                    VarValue::Str(s) => s.clone().into(),
                };
                (v.name.as_str().into(), value)
            })
            .collect()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// A `--timeout` value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout(pub Duration);

/// The longest deadline accepted: a probe that needs more is not a probe.
const MAX_TIMEOUT: Duration = Duration::from_secs(3600);

impl FromStr for Timeout {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let t = text.trim();
        let split = t
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(t.len());
        let (number, unit) = t.split_at(split);
        let hint = "use a number with a unit, e.g. 500ms, 2s, 1m (a bare number means seconds)";
        let value: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration '{text}': {hint}"))?;
        let scale = match unit.trim() {
            "" | "s" => 1.0,
            "ms" => 1e-3,
            "m" => 60.0,
            other => {
                return Err(format!(
                    "invalid duration '{text}': unknown unit '{other}'; {hint}"
                ))
            }
        };
        let secs = value * scale;
        if !secs.is_finite() || secs <= 0.0 {
            return Err(format!(
                "invalid duration '{text}': must be greater than zero"
            ));
        }
        // Compared as a float first: Duration::from_secs_f64 panics on values it cannot hold.
        if secs > MAX_TIMEOUT.as_secs_f64() {
            return Err(format!("invalid duration '{text}': at most 1h"));
        }
        if secs < 1e-3 {
            return Err(format!("invalid duration '{text}': at least 1ms"));
        }
        Ok(Timeout(Duration::from_secs_f64(secs)))
    }
}

/// A `--var NAME=VALUE` value, typed the way the script will see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Var {
    pub name: String,
    pub value: VarValue,
}

#[derive(Clone, Debug, PartialEq)]
pub enum VarValue {
    Int(i64),
    Float(f64),
    Bool(bool),
    Str(String),
}

impl fmt::Display for VarValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarValue::Int(v) => write!(f, "{v}"),
            VarValue::Float(v) => write!(f, "{v}"),
            VarValue::Bool(v) => write!(f, "{v}"),
            VarValue::Str(v) => write!(f, "{v:?}"),
        }
    }
}

/// Words a script cannot use as a variable name (Rhai keywords and reserved words).
const RESERVED: &[&str] = &[
    "true",
    "false",
    "let",
    "const",
    "if",
    "else",
    "switch",
    "do",
    "while",
    "until",
    "loop",
    "for",
    "in",
    "continue",
    "break",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "import",
    "export",
    "as",
    "this",
    "global",
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "eval",
    "var",
    "static",
    "shared",
    "with",
    "is",
    "goto",
    "exit",
    "match",
    "case",
    "public",
    "protected",
    "new",
    "use",
    "module",
    "package",
    "super",
    "spawn",
    "thread",
    "go",
    "sync",
    "async",
    "await",
    "yield",
    "default",
    "void",
    "null",
    "nil",
];

impl FromStr for Var {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let Some((name, raw)) = text.split_once('=') else {
            return Err(format!("invalid --var '{text}': expected NAME=VALUE, e.g. url=http://127.0.0.1:8080/health"));
        };
        let name = name.trim();
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(format!(
                "invalid --var name '{name}': use letters, digits and _ (not starting with a digit)"
            ));
        }
        if RESERVED.contains(&name) {
            return Err(format!(
                "invalid --var name '{name}': it is a reserved word in Rhai; pick another name"
            ));
        }
        Ok(Var {
            name: name.to_string(),
            value: typed(raw),
        })
    }
}

fn typed(raw: &str) -> VarValue {
    if raw.len() >= 2 && raw.starts_with('"') && raw.ends_with('"') {
        return VarValue::Str(raw[1..raw.len() - 1].to_string());
    }
    match raw {
        "true" => return VarValue::Bool(true),
        "false" => return VarValue::Bool(false),
        _ => {}
    }
    if let Ok(i) = raw.parse::<i64>() {
        return VarValue::Int(i);
    }
    // Only plain decimal floats: "inf", "NaN" and "1e3" stay strings, as a person would expect.
    if raw.contains('.')
        && raw
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
    {
        if let Ok(f) = raw.parse::<f64>() {
            return VarValue::Float(f);
        }
    }
    VarValue::Str(raw.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit_code::Exit;

    fn ms(t: &str) -> u128 {
        t.parse::<Timeout>().unwrap().0.as_millis()
    }

    #[test]
    fn durations() {
        assert_eq!(ms("500ms"), 500);
        assert_eq!(ms("2s"), 2000);
        assert_eq!(ms("1m"), 60_000);
        assert_eq!(ms("1"), 1000);
        assert_eq!(ms("0.5"), 500);
        assert_eq!(ms(" 1.5s "), 1500);
    }

    #[test]
    fn bad_durations_say_what_to_do() {
        for bad in [
            "",
            "abc",
            "5h",
            "0",
            "0ms",
            "-1s",
            "1e9",
            "2 weeks",
            "99999999s",
            // Found by fuzz/duration: once a panic in Duration::from_secs_f64.
            "2210122212212110122122111",
            "99999999999999999999999m",
            "0.0000001",
        ] {
            let err = bad.parse::<Timeout>().unwrap_err();
            assert!(err.contains("invalid duration"), "{bad}: {err}");
        }
        assert!("5x".parse::<Timeout>().unwrap_err().contains("e.g. 500ms"));
    }

    #[test]
    fn vars_are_typed() {
        let v = |t: &str| t.parse::<Var>().unwrap().value;
        assert_eq!(v("a=1"), VarValue::Int(1));
        assert_eq!(v("a=-7"), VarValue::Int(-7));
        assert_eq!(v("a=0.9"), VarValue::Float(0.9));
        assert_eq!(v("a=true"), VarValue::Bool(true));
        assert_eq!(
            v("a=http://x:1/a=b"),
            VarValue::Str("http://x:1/a=b".into())
        );
        assert_eq!(v("a=\"8080\""), VarValue::Str("8080".into()));
        assert_eq!(v("a="), VarValue::Str(String::new()));
        assert_eq!(v("a=inf"), VarValue::Str("inf".into()));
        assert_eq!(v("a=1.2.3"), VarValue::Str("1.2.3".into()));
    }

    #[test]
    fn bad_vars_are_rejected() {
        for bad in ["noequals", "=1", "1a=1", "a-b=1", "let=1", "a b=1"] {
            assert!(bad.parse::<Var>().is_err(), "{bad}");
        }
    }

    #[test]
    fn help_lists_every_exit_code() {
        for exit in Exit::ALL {
            let line = format!("  {:<3} {}", exit.code(), exit.meaning());
            assert!(EXIT_HELP.contains(&line), "missing: {line}");
        }
        assert_eq!(EXIT_HELP.lines().count(), Exit::ALL.len() + 1);
    }
}

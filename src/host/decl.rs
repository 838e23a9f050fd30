//! One declaration per host function, the way ripgrep declares its flags: everything the rest of
//! the program knows about a function is read from its [`HostFn`], written once beside its code.
//!
//! Registration (`host::register`), `rhai-probe functions` and the tables in docs/, the lint
//! (arity, literal argument types, option keys and types, result keys), the stubs of
//! `rhai-probe test` and their validation, the definition files of `rhai-probe defs`, masking
//! in the trace, and how a call is bounded by the deadline all come from here. A test in
//! `host/mod.rs` walks the list and fails for a function registered without a complete
//! declaration, or declared but missing from the docs, the stubs or the engine.
//!
//! Declarations are `const` data: nothing here runs at start-up.

use std::rc::Rc;

use rhai::{Dynamic, Engine, Map};

use super::Host;

/// A function a probe script can call.
pub struct HostFn {
    pub name: &'static str,
    /// `name(param: type, ...) -> type`, one per arity; types are those of [`Type`].
    pub signatures: &'static [&'static str],
    /// One line: what it does. `functions`, the docs table and error hints show it.
    pub summary: &'static str,
    /// The keys its `options` map accepts (empty: it takes none).
    pub options: &'static [Opt],
    /// For a map result, every key it always has.
    pub keys: &'static [Key],
    pub fails: Fails,
    pub time: Time,
    /// Arguments that may carry a credential; `Host::call` masks them before anything is
    /// recorded, whatever the function itself shows.
    pub secrets: &'static [Secret],
    /// What `rhai-probe test` does with it.
    pub stub: Stub,
    /// What a call reaches, read from its arguments: what `--allow-*` checks where stubs
    /// answer (`rhai-probe test`), and what `check --permissions` lists from literal arguments.
    /// (Real calls are checked where they reach the world, `crate::permissions`.)
    pub reach: Reach,
    /// Registers every signature with the engine.
    pub register: fn(&mut Engine, &Rc<Host>),
}

/// What a call reaches, by argument position. A function with a `unix_socket` option reaches
/// that socket instead of its URL's host when the option is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reach {
    Nothing,
    /// A URL: its host and port (or the scheme's default port).
    Url(usize),
    /// A host and a port.
    HostPort(usize, usize),
    /// A host name looked up, on no port.
    Name(usize),
    /// A PostgreSQL or MySQL DSN: each of its hosts, or its socket.
    Dsn(usize),
    /// A file or directory read or looked at.
    Path(usize),
    /// An environment variable.
    Env(usize),
    /// A gRPC target: `host:port`, `unix:/path`, or a `grpc://` URL.
    Target(usize),
}

/// The types a signature, an option or a result key names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Type {
    Bool,
    Int,
    Float,
    String,
    Map,
    Array,
    Closure,
    /// Any value (a `--var` default, a database value).
    Any,
    /// No value (`sleep`).
    Nothing,
}

impl Type {
    /// The word a signature uses.
    pub fn parse(word: &str) -> Option<Type> {
        Some(match word {
            "bool" => Type::Bool,
            "int" => Type::Int,
            "float" => Type::Float,
            "string" => Type::String,
            "map" => Type::Map,
            "array" => Type::Array,
            "closure" => Type::Closure,
            "any" => Type::Any,
            "()" => Type::Nothing,
            _ => return None,
        })
    }

    pub fn word(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::String => "string",
            Type::Map => "map",
            Type::Array => "array",
            Type::Closure => "closure",
            Type::Any => "any",
            Type::Nothing => "()",
        }
    }

    /// As a person says it: "an integer", "a string".
    pub fn described(self) -> &'static str {
        match self {
            Type::Bool => "a boolean (true or false)",
            Type::Int => "an integer",
            Type::Float => "a float",
            Type::String => "a string",
            Type::Map => "a map",
            Type::Array => "an array",
            Type::Closure => "a closure",
            Type::Any => "a value",
            Type::Nothing => "nothing",
        }
    }

    /// The type Rhai's definition files use.
    pub fn rhai(self) -> &'static str {
        match self {
            Type::Bool => "bool",
            Type::Int => "int",
            Type::Float => "float",
            Type::String => "String",
            Type::Map => "Map",
            Type::Array => "Array",
            Type::Closure => "Fn",
            Type::Any => "?",
            Type::Nothing => "()",
        }
    }

    /// Whether a value of type `got` can be passed where this type is declared. An integer is
    /// not a float here: Rhai does not convert arguments, so `load_avg(1.0)` is not
    /// `load_avg(1)`; a float parameter that takes integers has a signature for each.
    pub fn takes(self, got: Type) -> bool {
        self == Type::Any || self == got
    }

    /// The type of a TOML value, as a stub gives it.
    pub fn of_toml(value: &toml::Value) -> Type {
        match value {
            toml::Value::Boolean(_) => Type::Bool,
            toml::Value::Integer(_) => Type::Int,
            toml::Value::Float(_) => Type::Float,
            toml::Value::String(_) | toml::Value::Datetime(_) => Type::String,
            toml::Value::Array(_) => Type::Array,
            toml::Value::Table(_) => Type::Map,
        }
    }

    /// Whether a stub's TOML value may stand for a result of this type: as the type checks in
    /// scripts, except that an integer stands for a float (`load_avg = 1` reads as 1.0).
    pub fn accepts_stub(self, value: &toml::Value) -> bool {
        let got = Type::of_toml(value);
        self == Type::Any || self == got || (self == Type::Float && got == Type::Int)
    }
}

/// One parameter of a signature.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Param<'a> {
    pub name: &'a str,
    pub ty: Type,
}

/// A signature read from its text: `http_get(url: string, options: map) -> map`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Signature<'a> {
    pub params: Vec<Param<'a>>,
    pub returns: Type,
}

impl<'a> Signature<'a> {
    /// `None` for text that is not a signature (a test checks every declared one reads).
    pub fn parse(text: &'a str) -> Option<Signature<'a>> {
        let (_, rest) = text.split_once('(')?;
        let (inside, after) = rest.split_once(')')?;
        let mut params = Vec::new();
        for part in inside.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, ty) = part.split_once(':')?;
            params.push(Param {
                name: name.trim(),
                ty: Type::parse(ty.trim())?,
            });
        }
        let returns = match after.trim().strip_prefix("->") {
            Some(ty) => Type::parse(ty.trim())?,
            None if after.trim().is_empty() => Type::Nothing,
            None => return None,
        };
        Some(Signature { params, returns })
    }
}

/// A key of an `options` map.
pub struct Opt {
    pub key: &'static str,
    pub ty: OptType,
    /// What applies when the key is absent, as the docs show it (`""`: nothing).
    pub default: &'static str,
    pub doc: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptType {
    Bool,
    Int,
    String,
    Map,
    /// `"500ms"`, `"2s"` or a number of seconds.
    Duration,
    /// A map or an array (a JSON document).
    Json,
}

impl OptType {
    pub fn described(self) -> &'static str {
        match self {
            OptType::Bool => "true or false",
            OptType::Int => "an integer",
            OptType::String => "a string",
            OptType::Map => "a map",
            OptType::Duration => "a duration such as \"500ms\" or a number of seconds",
            OptType::Json => "a map or an array",
        }
    }

    /// Whether a literal of type `got` fits.
    pub fn takes(self, got: Type) -> bool {
        match self {
            OptType::Bool => got == Type::Bool,
            OptType::Int => got == Type::Int,
            OptType::String => got == Type::String,
            OptType::Map => got == Type::Map,
            OptType::Duration => matches!(got, Type::String | Type::Int | Type::Float),
            OptType::Json => matches!(got, Type::Map | Type::Array),
        }
    }
}

/// The `timeout` and `timeout_ms` options every network function takes.
pub const TIMEOUT: Opt = Opt {
    key: "timeout",
    ty: OptType::Duration,
    default: "the time left",
    doc: "`\"500ms\"`, `\"2s\"`, or a number of seconds; never more than the time left",
};
pub const TIMEOUT_MS: Opt = Opt {
    key: "timeout_ms",
    ty: OptType::Int,
    default: "",
    doc: "the same in integer milliseconds",
};

/// A key of a map result.
pub struct Key {
    pub name: &'static str,
    pub ty: Type,
    pub doc: &'static str,
    /// What a stub that leaves the key out gets.
    pub stub: KeyStub,
}

/// A key whose stub default is `()`, as on a machine that lacks the figure.
pub const fn unit_key(name: &'static str, ty: Type, doc: &'static str) -> Key {
    Key {
        name,
        ty,
        doc,
        stub: KeyStub::Unit,
    }
}

pub enum KeyStub {
    /// This TOML value.
    Value(&'static str),
    /// `()`, as on a machine that lacks the figure (TOML has no null).
    Unit,
    /// Computed from the rest of the stub and the call's arguments; the text says how.
    Derived(&'static str, fn(&Map, &[Dynamic]) -> Dynamic),
}

impl KeyStub {
    /// How the docs describe the default.
    pub fn describe(&self) -> String {
        match self {
            KeyStub::Value(v) => format!("`{v}`"),
            KeyStub::Unit => "`()`".into(),
            KeyStub::Derived(how, _) => (*how).into(),
        }
    }
}

/// How a function fails: one rule per kind, documented once (docs/functions.md, "Errors").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fails {
    /// Asks a yes-or-no question of a peer: a peer that is down, refuses, rejects the login or
    /// does not answer in time is `false`, with the reason in the verdict line. It never throws
    /// for the peer's state.
    False,
    /// Reads a value: when it cannot (the peer, the file or the kernel fails), it throws a
    /// catchable error naming what failed: exit 2 unless caught, and a `check` closure fails
    /// only that check.
    Throws,
    /// Only a bad argument can stop it (a script fault).
    Never,
}

impl Fails {
    pub fn describe(self) -> &'static str {
        match self {
            Fails::False => "false, with the reason",
            Fails::Throws => "throws (catchable)",
            Fails::Never => "never (bad arguments are script faults)",
        }
    }
}

/// How a call is held to the probe's deadline.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Time {
    /// Talks to a peer: it gets the time left (its own `timeout` clamped to it) and honours it.
    Network,
    /// Reads the kernel or the filesystem (/proc, cgroups, statvfs, files): instant, except
    /// on a hung mount. `serve`, which has no watchdog, runs it on a helper thread that the
    /// deadline abandons; `run` calls it directly (its watchdog ends the process).
    Local,
    /// Waits on purpose (`sleep`, a CPU sample): never past the time left.
    Waits,
    /// No I/O.
    Pure,
}

/// An argument that may carry a credential, and how it is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Secret {
    /// The argument's position (0-based).
    pub arg: usize,
    pub mask: Mask,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mask {
    /// `scheme://user:***@host/…?token=***`
    Url,
    /// A PostgreSQL or MySQL DSN, URL or `key=value` form.
    Dsn,
}

/// What `rhai-probe test` does with a function.
pub enum Stub {
    /// Runs as in production: it reads nothing of the world (`check`, `json`, `var_or`).
    Real,
    /// Returns at once (`sleep`).
    Instant,
    /// Reads the world: every case must answer it. `example` is a TOML value of a healthy
    /// answer, `failing` one of a failed answer; the starter cases and the docs show them.
    Answer {
        example: &'static str,
        failing: &'static str,
    },
}

impl HostFn {
    /// The parsed signatures (declarations are checked by a test to parse).
    pub fn parsed(&self) -> impl Iterator<Item = Signature<'static>> + '_ {
        self.signatures.iter().filter_map(|s| Signature::parse(s))
    }

    /// The numbers of arguments its signatures take, without repeats.
    pub fn arities(&self) -> Vec<usize> {
        let mut arities: Vec<usize> = self.parsed().map(|s| s.params.len()).collect();
        arities.dedup();
        arities
    }

    pub fn option(&self, key: &str) -> Option<&'static Opt> {
        self.options.iter().find(|o| o.key == key)
    }

    pub fn key(&self, name: &str) -> Option<&'static Key> {
        self.keys.iter().find(|k| k.name == name)
    }

    pub fn option_keys(&self) -> Vec<&'static str> {
        self.options.iter().map(|o| o.key).collect()
    }

    pub fn stubbed(&self) -> bool {
        matches!(self.stub, Stub::Answer { .. })
    }

    /// The type its signatures return: `any` when they differ (`env` without a default
    /// returns a string, with one whatever the default is).
    pub fn returns(&self) -> Option<Type> {
        let mut types = self.parsed().map(|s| s.returns);
        let first = types.next()?;
        Some(if types.all(|t| t == first) {
            first
        } else {
            Type::Any
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_read_back() {
        let s = Signature::parse("http_get(url: string, options: map) -> map").unwrap();
        assert_eq!(
            s.params,
            [
                Param {
                    name: "url",
                    ty: Type::String
                },
                Param {
                    name: "options",
                    ty: Type::Map
                }
            ]
        );
        assert_eq!(s.returns, Type::Map);
        assert_eq!(
            Signature::parse("sleep(seconds: int)").unwrap().returns,
            Type::Nothing
        );
        assert_eq!(Signature::parse("load_avg() -> float").unwrap().params, []);
        assert!(Signature::parse("f(x: number) -> int").is_none());
        assert!(Signature::parse("f(x) -> int").is_none());
    }
}

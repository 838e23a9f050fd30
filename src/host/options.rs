//! The `options` map that host functions take as their last argument: unknown keys and wrong
//! types are the script's fault, reported with the key and what it accepts. The keys and their
//! types are the function's declaration (`decl::Opt`), which the lint reads too.

use std::time::Duration;

use rhai::{Dynamic, Map};

use super::{decl::OptType, HostError, HostFn};
use crate::{cli::Timeout, diagnostic::closest};

pub struct Options<'a> {
    map: Option<&'a Map>,
}

impl<'a> Options<'a> {
    pub fn none() -> Self {
        Options { map: None }
    }

    /// Accepts `map` if every key is one of the options `f` declares, with a value of its type.
    pub fn new(map: &'a Map, f: &'static HostFn) -> Result<Self, HostError> {
        for (key, value) in map {
            let Some(opt) = f.option(key) else {
                return Err(HostError::Fault(unknown(key, &f.option_keys())));
            };
            if !value.is_unit() && !fits(opt.ty, value) {
                return Err(Self::wrong(key, opt.ty.described(), value));
            }
        }
        Ok(Options { map: Some(map) })
    }

    fn get(&self, key: &str) -> Option<&Dynamic> {
        self.map.and_then(|m| m.get(key)).filter(|v| !v.is_unit())
    }

    fn wrong(key: &str, want: &str, got: &Dynamic) -> HostError {
        HostError::Fault(format!(
            "option '{key}' must be {want}, got {}",
            got.type_name()
        ))
    }

    pub fn bool(&self, key: &str) -> Result<Option<bool>, HostError> {
        self.get(key)
            .map(|v| {
                v.as_bool()
                    .map_err(|_| Self::wrong(key, "true or false", v))
            })
            .transpose()
    }

    pub fn int(&self, key: &str) -> Result<Option<i64>, HostError> {
        self.get(key)
            .map(|v| v.as_int().map_err(|_| Self::wrong(key, "an integer", v)))
            .transpose()
    }

    pub fn string(&self, key: &str) -> Result<Option<String>, HostError> {
        self.get(key)
            .map(|v| {
                v.read_lock::<rhai::ImmutableString>()
                    .map(|s| s.to_string())
                    .ok_or_else(|| Self::wrong(key, "a string", v))
            })
            .transpose()
    }

    pub fn map(&self, key: &str) -> Result<Option<Map>, HostError> {
        self.get(key)
            .map(|v| {
                v.read_lock::<Map>()
                    .map(|m| m.clone())
                    .ok_or_else(|| Self::wrong(key, "a map", v))
            })
            .transpose()
    }

    /// A value as it is (the caller checked its type against the declaration).
    pub fn value(&self, key: &str) -> Option<Dynamic> {
        self.get(key).cloned()
    }

    /// `timeout`: `"500ms"`, `"2s"`, or a number of seconds (like `--timeout`); `timeout_ms`: an
    /// integer number of milliseconds.
    pub fn timeout(&self) -> Result<Option<Duration>, HostError> {
        if let Some(ms) = self.int("timeout_ms")? {
            if ms <= 0 {
                return Err(HostError::Fault(format!(
                    "option 'timeout_ms' must be > 0, got {ms}"
                )));
            }
            return Ok(Some(Duration::from_millis(ms as u64)));
        }
        let Some(v) = self.get("timeout") else {
            return Ok(None);
        };
        let text = if let Ok(i) = v.as_int() {
            i.to_string()
        } else if let Ok(f) = v.as_float() {
            f.to_string()
        } else if let Some(s) = v.read_lock::<rhai::ImmutableString>() {
            s.to_string()
        } else {
            return Err(Self::wrong(
                "timeout",
                "a duration such as \"500ms\" or a number of seconds",
                v,
            ));
        };
        text.parse::<Timeout>()
            .map(|t| Some(t.0))
            .map_err(|e| HostError::Fault(format!("option 'timeout': {e}")))
    }
}

/// `unknown option 'timout'; did you mean 'timeout'? known options: …`: the lint says the same.
pub fn unknown(key: &str, known: &[&str]) -> String {
    let hint = match closest(key, known.iter().copied()) {
        Some(near) => format!("did you mean '{near}'? "),
        None => String::new(),
    };
    format!(
        "unknown option '{key}'; {hint}known options: {}",
        known.join(", ")
    )
}

/// Whether `value` is of an option type (the getters then read it without failing).
fn fits(ty: OptType, value: &Dynamic) -> bool {
    match ty {
        OptType::Bool => value.is_bool(),
        OptType::Int => value.is_int(),
        OptType::String => value.is_string(),
        OptType::Map => value.is_map(),
        OptType::Duration => value.is_string() || value.is_int() || value.is_float(),
        OptType::Json => value.is_map() || value.is_array(),
    }
}

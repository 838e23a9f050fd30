//! Host results are contracts, JSON is data: the one place that decides what reading a key that
//! is not there means.
//!
//! - A host function's map result (`http_get`, `memory`, …) has the keys its declaration lists,
//!   always. Reading another one is a typo in the script: a script fault with "did you mean".
//! - JSON from a peer (`resp.json()`, `json(text)`) is the peer's data. A key or item it lacks
//!   is the peer's problem, not the script's: a catchable error naming where the JSON came from
//!   and the key's path (`GET http://…/health: JSON has no key components.db.status`), so it
//!   fails the `check` it is read in, or ends the run as a check error (exit 2).
//! - A map the script made itself: a missing key is the script's fault, with "did you mean".
//!
//! Optional reads work on all of them: `h?.components` and `h.components ?? "none"` read a key
//! that is not there as `()` (the left of `??` reads as a chain of `?.`; vendor/rhai.patch).
//!
//! Which is which travels with the value, in Rhai's per-value tag: a host result carries its
//! function's place in the list (negative), and every JSON object or array the number of a
//! [`Source`] entry (positive), which says where the JSON came from and the container's path.
//! Copies keep the tag; a map built by the script has none.

use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, Map, Position};

use super::{functions, Host, HostFn};
use crate::diagnostic::{closest, with_help};

/// Rhai's per-value tag (`Dynamic::tag`; Rhai does not export the alias).
type Tag = i32;

/// Where a JSON container came from.
#[derive(Debug)]
struct Source {
    /// `GET http://…/health` or `json(text)`, secrets masked.
    origin: Rc<str>,
    /// The container's path from the top: `""`, `components`, `checks[0].tags`.
    path: String,
}

/// The sources of one evaluation's JSON values.
#[derive(Debug, Default)]
pub struct Sources(Vec<Source>);

impl Sources {
    pub fn clear(&mut self) {
        self.0.clear();
    }

    fn add(&mut self, origin: &Rc<str>, path: String) -> Tag {
        // Past the tag's range a container is simply untagged: its misses read as the script's.
        let Ok(tag) = Tag::try_from(self.0.len() + 1) else {
            return 0;
        };
        self.0.push(Source {
            origin: origin.clone(),
            path,
        });
        tag
    }

    fn get(&self, tag: Tag) -> Option<&Source> {
        usize::try_from(tag)
            .ok()?
            .checked_sub(1)
            .and_then(|i| self.0.get(i))
    }
}

/// The tag of a map result of `f`.
fn result_tag(f: &HostFn) -> Tag {
    let index = functions().position(|g| g.name == f.name).unwrap_or(0);
    -(index as Tag) - 1
}

fn result_of(tag: Tag) -> Option<&'static HostFn> {
    let index = usize::try_from(tag.checked_neg()?).ok()?.checked_sub(1)?;
    functions().nth(index)
}

pub fn tagged_result(f: &'static HostFn, map: Map) -> Dynamic {
    let mut value = Dynamic::from_map(map);
    value.set_tag(result_tag(f));
    value
}

/// Parse `text` as JSON from `origin`: objects become maps, arrays arrays, `null` `()`, each
/// container tagged with where it came from. Throws (check error) when it is not JSON.
pub fn parse_json(host: &Host, origin: String, text: &str) -> Result<Dynamic, Box<EvalAltResult>> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        let start: String = text.chars().take(60).collect();
        format!("{origin}: body is not JSON ({e}); it starts with {start:?}")
    })?;
    let origin: Rc<str> = origin.into();
    let mut sources = host.json.borrow_mut();
    Ok(convert(value, &mut sources, &origin, String::new()))
}

fn convert(
    value: serde_json::Value,
    sources: &mut Sources,
    origin: &Rc<str>,
    path: String,
) -> Dynamic {
    use serde_json::Value;
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => b.into(),
        Value::Number(n) => match n.as_i64() {
            Some(i) => i.into(),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => s.into(),
        Value::Array(items) => {
            let array: rhai::Array = items
                .into_iter()
                .enumerate()
                .map(|(i, item)| convert(item, sources, origin, format!("{path}[{i}]")))
                .collect();
            let mut value = Dynamic::from_array(array);
            value.set_tag(sources.add(origin, path));
            value
        }
        Value::Object(fields) => {
            let map: Map = fields
                .into_iter()
                .map(|(key, item)| {
                    let inner = join(&path, &key);
                    (key.into(), convert(item, sources, origin, inner))
                })
                .collect();
            let mut value = Dynamic::from_map(map);
            value.set_tag(sources.add(origin, path));
            value
        }
    }
}

/// `path.key`, or `key` at the top; a key that is not a plain name is quoted, as in jq.
fn join(path: &str, key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    match (path.is_empty(), plain) {
        (true, true) => key.to_string(),
        (false, true) => format!("{path}.{key}"),
        (_, false) => format!("{path}[{key:?}]"),
    }
}

/// The optional way to read `key`: `?.key`, or `?["key"]` when it is not a plain name.
fn optional_read(key: &str) -> String {
    let plain = key
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
        && key.chars().all(|c| c.is_alphanumeric() || c == '_');
    if plain {
        format!("?.{key}")
    } else {
        format!("?[{key:?}]")
    }
}

/// What reading `key`, which `map` lacks, means (see the module's doc).
fn missing_key(host: &Host, map: &Map, key: &str, tag: Tag) -> Box<EvalAltResult> {
    if let Some(f) = result_of(tag) {
        let names = f.keys.iter().map(|k| k.name);
        let help = match closest(key, names.clone()) {
            Some(near) => format!(
                "did you mean '{near}'? ({}'s result has {})",
                f.name,
                list(names)
            ),
            None => format!("{}'s result has {}", f.name, list(names)),
        };
        let message = format!("{}'s result has no key '{key}'", f.name);
        return EvalAltResult::ErrorDotExpr(with_help(&message, &help), Position::NONE).into();
    }
    if let Some(source) = host.json.borrow().get(tag) {
        let message = format!(
            "{}: JSON has no key {}",
            source.origin,
            join(&source.path, key)
        );
        let help = format!(
            "if the key may be absent, read it with `{}` (gives ()) or add `?? DEFAULT`",
            optional_read(key)
        );
        return EvalAltResult::ErrorRuntime(with_help(&message, &help).into(), Position::NONE)
            .into();
    }
    let message = format!("the map has no key '{key}'");
    let names = map.keys().map(|k| k.as_str());
    let help = match closest(key, names) {
        Some(near) => format!("did you mean '{near}'?"),
        None => format!(
            "if the key may be absent, read it with `{}` (gives ()) or add `?? DEFAULT`",
            optional_read(key)
        ),
    };
    EvalAltResult::ErrorDotExpr(with_help(&message, &help), Position::NONE).into()
}

/// What an index past the end of `array` means: the peer's problem for JSON, else Rhai's own
/// error (the script's fault).
fn missing_item(
    host: &Host,
    array: &rhai::Array,
    index: rhai::INT,
    tag: Tag,
) -> Box<EvalAltResult> {
    if let Some(source) = host.json.borrow().get(tag) {
        let path = if source.path.is_empty() {
            "the top"
        } else {
            &source.path
        };
        let message = format!(
            "{}: JSON has no item [{index}] in {path} (it has {} item{})",
            source.origin,
            array.len(),
            if array.len() == 1 { "" } else { "s" }
        );
        let help = format!("if the item may be absent, read it with `?[{index}]` (gives ())");
        return EvalAltResult::ErrorRuntime(with_help(&message, &help).into(), Position::NONE)
            .into();
    }
    EvalAltResult::ErrorArrayBounds(array.len(), index, Position::NONE).into()
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    names.collect::<Vec<_>>().join(", ")
}

/// Install the two callbacks in the engine.
pub fn install(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.on_map_missing_property(move |map, key, tag, _| Err(missing_key(&h, map, key, tag)));
    let h = host.clone();
    engine.on_invalid_array_index(move |array, index, tag, _| {
        Err(missing_item(&h, array, index, tag))
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_like_jq() {
        assert_eq!(join("", "status"), "status");
        assert_eq!(join("components", "db"), "components.db");
        assert_eq!(
            join("checks[0]", "content-type"),
            "checks[0][\"content-type\"]"
        );
        assert_eq!(optional_read("db"), "?.db");
        assert_eq!(optional_read("2xx"), "?[\"2xx\"]");
    }

    #[test]
    fn tags_name_their_function_and_nothing_else() {
        for (i, f) in functions().enumerate() {
            let tag = result_tag(f);
            assert!(tag < 0);
            assert_eq!(result_of(tag).map(|g| g.name), Some(f.name), "{i}");
        }
        assert!(result_of(0).is_none());
        assert!(result_of(5).is_none());
        assert!(result_of(Tag::MIN).is_none());
        let sources = Sources::default();
        assert!(sources.get(-1).is_none() && sources.get(0).is_none() && sources.get(1).is_none());
    }
}

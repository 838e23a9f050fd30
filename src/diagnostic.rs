//! Script errors as a person should see them: `path:line:col: message`, then the source line
//! with a caret and a hint on what to do. Rhai's errors are kept intact until here; this is the
//! only place that turns them into text.

use std::fmt::Write as _;

use rhai::{EvalAltResult, ParseError, ParseErrorType};

use crate::{engine::limits, host, trace::Pos};

#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    pub message: String,
    pub pos: Pos,
    /// Extra lines: where a failing function was called from, a `help:` hint.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn new(message: impl Into<String>, pos: Pos) -> Self {
        Diagnostic {
            message: message.into(),
            pos,
            notes: Vec::new(),
        }
    }

    fn help(mut self, hint: impl Into<String>) -> Self {
        self.notes.push(format!("help: {}", hint.into()));
        self
    }

    /// `path:line:col: message` (or `path: message` when the position is unknown).
    pub fn one_line(&self, source: &str) -> String {
        format!("{}: {}", location(source, self.pos), self.message)
    }

    /// The multi-line form with the source line and a caret, for stderr.
    pub fn render(&self, source: &str, text: &str, color: bool) -> String {
        let (red, blue, bold, reset) = if color {
            ("\x1b[1;31m", "\x1b[1;34m", "\x1b[1m", "\x1b[0m")
        } else {
            ("", "", "", "")
        };
        let mut out = String::new();
        let _ = writeln!(out, "{red}error{reset}{bold}: {}{reset}", self.message);
        let _ = writeln!(out, " {blue}-->{reset} {}", location(source, self.pos));
        if let Some(line) = self
            .pos
            .line
            .checked_sub(1)
            .and_then(|i| text.lines().nth(i))
        {
            let width = self.pos.line.to_string().len();
            let shown: String = crate::redact::mask_line(&line.replace('\t', "    "))
                .chars()
                .take(200)
                .collect();
            let caret_at: usize = line
                .chars()
                .take(self.pos.col.saturating_sub(1))
                .map(|c| if c == '\t' { 4 } else { 1 })
                .sum();
            let pad = " ".repeat(width);
            let _ = writeln!(out, "{pad} {blue}|{reset}");
            let _ = writeln!(out, "{blue}{}{reset} {blue}|{reset} {shown}", self.pos.line);
            let _ = writeln!(
                out,
                "{pad} {blue}|{reset} {}{red}^{reset}",
                " ".repeat(caret_at.min(200))
            );
        }
        for note in &self.notes {
            let _ = writeln!(out, "  {blue}={reset} {note}");
        }
        out
    }
}

/// An error message with a hint, as host code raises it inside a Rhai error: the hint goes on
/// its own line after the message, and [`split_help`] takes it apart again.
pub fn with_help(message: &str, help: &str) -> String {
    format!("{message}\n{HELP}{help}")
}

const HELP: &str = "help: ";

/// `(message, hints)` of a text made by [`with_help`]; a text without hints is all message.
pub fn split_help(text: &str) -> (&str, Vec<&str>) {
    let mut lines = text.split('\n');
    let message = lines.next().unwrap_or_default();
    (
        message,
        lines.filter_map(|l| l.strip_prefix(HELP)).collect(),
    )
}

pub fn location(source: &str, pos: Pos) -> String {
    if pos.is_known() {
        format!("{source}:{}:{}", pos.line, pos.col)
    } else {
        source.to_string()
    }
}

/// A compile error in `text`.
pub fn from_parse(err: &ParseError, text: &str) -> Diagnostic {
    let pos = Pos::from(err.position());
    match err.err_type() {
        // Rhai notices a missing `;` at the start of the next statement; point where it belongs.
        ParseErrorType::MissingToken(token, _) if token == ";" => {
            let end = end_of_previous_line(text, pos).unwrap_or(pos);
            Diagnostic::new("missing ';' at the end of this statement", end)
                .help("separate statements with ';' (only the last expression, the probe's result, goes without)")
        }
        ParseErrorType::VariableUndefined(name) => {
            Diagnostic::new(format!("variable '{name}' is not defined"), pos).help(format!(
                "define it with let, pass it with --var {name}=VALUE, or read it with `var_or(\"{name}\", DEFAULT)`"
            ))
        }
        ParseErrorType::ExprTooDeep => Diagnostic::new(
            format!("expression nested too deeply (more than {} levels)", limits::EXPR_DEPTH),
            pos,
        )
        .help("split it into smaller expressions with let"),
        ParseErrorType::Reserved(word) if word == "import" || word == "export" => {
            Diagnostic::new(format!("'{word}' is not available in probe scripts"), pos)
                .help("a probe is a single self-contained script; put the code in this file")
        }
        ParseErrorType::Reserved(word) if word == "#!" => {
            Diagnostic::new("'#!' is only allowed on the first line", pos)
        }
        other => Diagnostic::new(format!("syntax error: {other}"), pos),
    }
}

/// A run-time error (anything but the deadline, which the probe reports itself).
pub fn from_eval(err: &EvalAltResult) -> Diagnostic {
    let pos = Pos::from(err.position());
    match err {
        EvalAltResult::ErrorInFunctionCall(name, _, inner, call_pos) => {
            let mut d = from_eval(inner);
            let call = Pos::from(*call_pos);
            let what = if name.starts_with("anon$") {
                "a closure".to_string()
            } else {
                format!("function '{name}'")
            };
            d.notes.insert(0, format!("in {what} called at line {}, column {}", call.line, call.col));
            d
        }
        EvalAltResult::ErrorSystem(_, inner) => match inner.downcast_ref::<host::Fault>() {
            Some(f) => Diagnostic::new(f.message.clone(), f.position.into()),
            None => Diagnostic::new(inner.to_string(), pos),
        },
        EvalAltResult::ErrorParsing(kind, _) => {
            from_parse(&ParseError(Box::new(kind.clone()), err.position()), "")
        }
        EvalAltResult::ErrorRuntime(value, _) => match value.read_lock::<rhai::ImmutableString>() {
            Some(text) => {
                let (message, hints) = split_help(&text);
                let mut d = Diagnostic::new(message, pos);
                for hint in hints {
                    d = d.help(hint);
                }
                d
            }
            None => Diagnostic::new(format!("threw {value}"), pos),
        },
        EvalAltResult::ErrorFunctionNotFound(signature, _) => unknown_function(signature, pos),
        EvalAltResult::ErrorPropertyNotFound(name, _) => {
            Diagnostic::new(format!("the map has no key '{name}'"), pos).help(format!(
                "if the key may be absent, read it with `?.{name}` (gives ()) or add `?? DEFAULT`"
            ))
        }
        // Raised by `host::values` with their hints on lines of their own.
        EvalAltResult::ErrorDotExpr(text, _) => {
            let (message, hints) = split_help(text);
            let mut d = Diagnostic::new(message, pos);
            for hint in hints {
                d = d.help(hint);
            }
            d
        }
        EvalAltResult::ErrorTooManyOperations(_) => Diagnostic::new(
            format!("the script ran more than {} operations (sandbox limit)", limits::OPERATIONS),
            pos,
        )
        .help("an endless loop? a probe should do a few checks and return"),
        EvalAltResult::ErrorStackOverflow(_) => Diagnostic::new(
            format!("function calls nested more than {} deep (sandbox limit)", limits::CALL_LEVELS),
            pos,
        )
        .help("unbounded recursion? make sure it has a base case"),
        EvalAltResult::ErrorDataTooLarge(what, _) => Diagnostic::new(
            format!(
                "{what} larger than the sandbox allows (strings {} bytes, arrays {} items, maps {} keys)",
                limits::STRING_SIZE,
                limits::ARRAY_SIZE,
                limits::MAP_SIZE
            ),
            pos,
        ),
        EvalAltResult::ErrorTooManyVariables(_) => Diagnostic::new(
            format!("more than {} variables (sandbox limit)", limits::VARIABLES),
            pos,
        ),
        EvalAltResult::ErrorMismatchOutputType(want, got, _) => {
            Diagnostic::new(format!("expected {want}, got {got}"), pos)
        }
        other => {
            // Rhai's text ends with " (line 3, position 5)"; the position is shown separately.
            let text = other.to_string();
            let text = match text.rfind(" (line ") {
                Some(i) if text.ends_with(')') => text[..i].to_string(),
                _ => text,
            };
            Diagnostic::new(text, pos)
        }
    }
}

/// Just after the last non-blank character before `pos` on an earlier line, if `pos` starts its
/// line (nothing but blanks before it).
fn end_of_previous_line(text: &str, pos: Pos) -> Option<Pos> {
    let lines: Vec<&str> = text.lines().collect();
    let current = lines.get(pos.line.checked_sub(1)?)?;
    if !current
        .chars()
        .take(pos.col.saturating_sub(1))
        .all(char::is_whitespace)
    {
        return None;
    }
    (0..pos.line - 1).rev().find_map(|i| {
        let code = lines[i].split("//").next().unwrap_or("").trim_end();
        (!code.is_empty()).then(|| Pos {
            line: i + 1,
            col: code.chars().count() + 1,
        })
    })
}

/// `htp_get (&str | ImmutableString | String)` → a message naming the function and what to do.
fn unknown_function(signature: &str, pos: Pos) -> Diagnostic {
    let name = signature
        .split([' ', '('])
        .next()
        .unwrap_or(signature)
        .trim();
    let args = signature[name.len()..].trim();
    let args = simplify_types(args);
    if let Some(doc) = host::find(name) {
        return Diagnostic::new(format!("{name} cannot be called with {args}"), pos)
            .help(format!("{name} takes: {}", doc.signatures.join("; ")));
    }
    let d = Diagnostic::new(format!("unknown function {name}{args}"), pos);
    match closest(name, host::functions().map(|f| f.name)) {
        Some(near) => {
            let summary = host::find(near).map_or("", |f| f.summary);
            d.help(format!("did you mean {near}? ({summary})"))
        }
        None => d.help("see docs/functions.md for the functions a probe can call"),
    }
}

/// Rhai spells a string argument `&str | ImmutableString | String`; people write `string`.
fn simplify_types(args: &str) -> String {
    // `()` is both an empty list (`f ()`) and the unit type (`f (i64, ())`): only the second is a
    // type to name.
    let inner = args
        .strip_prefix('(')
        .and_then(|a| a.strip_suffix(')'))
        .unwrap_or(args);
    let types: Vec<String> = inner
        .split(", ")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| {
            t.replace("&str | ImmutableString | String", "string")
                .replace("ImmutableString", "string")
                .replace("i64", "int")
                .replace("f64", "float")
                .replace("()", "unit")
        })
        .collect();
    format!("({})", types.join(", "))
}

/// The candidate closest to `name` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (name.chars().count() / 3).max(1);
    candidates
        .map(|c| (edit_distance(name, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let names = ["http_get", "tcp_open", "load_avg"];
        assert_eq!(closest("htp_get", names.iter().copied()), Some("http_get"));
        assert_eq!(closest("tcp_opne", names.iter().copied()), Some("tcp_open"));
        assert_eq!(closest("frobnicate", names.iter().copied()), None);
    }

    #[test]
    fn renders_caret_under_the_column() {
        let d = Diagnostic::new("boom", Pos { line: 2, col: 9 });
        let text = "let a = 1;\nlet r = htp_get(url);\n";
        let out = d.render("p.rhai", text, false);
        assert_eq!(
            out,
            "error: boom\n --> p.rhai:2:9\n  |\n2 | let r = htp_get(url);\n  |         ^\n"
        );
        assert_eq!(d.one_line("p.rhai"), "p.rhai:2:9: boom");
    }

    #[test]
    fn missing_semicolon_points_at_the_end_of_the_statement() {
        let text = "let r = 1 // comment\n\nr == 1\n";
        assert_eq!(
            end_of_previous_line(text, Pos { line: 3, col: 1 }),
            Some(Pos { line: 1, col: 10 })
        );
        assert_eq!(end_of_previous_line(text, Pos { line: 3, col: 3 }), None);
        assert_eq!(end_of_previous_line(text, Pos { line: 1, col: 1 }), None);
    }

    #[test]
    fn unknown_host_signature_lists_the_right_ones() {
        let d = unknown_function("http_get (i64)", Pos::default());
        assert_eq!(d.message, "http_get cannot be called with (int)");
        assert!(d.notes[0].contains("http_get(url: string)"));
        let d = unknown_function("htp_get (&str | ImmutableString | String)", Pos::default());
        assert_eq!(d.message, "unknown function htp_get(string)");
        // No arguments, and a unit one.
        assert_eq!(
            unknown_function("lod_avg ()", Pos::default()).message,
            "unknown function lod_avg()"
        );
        assert_eq!(
            unknown_function("lod_avg (i64, ())", Pos::default()).message,
            "unknown function lod_avg(int, unit)"
        );
        assert!(
            d.notes[0].starts_with("help: did you mean http_get? (GET a URL"),
            "{:?}",
            d.notes
        );
    }
}

//! `rhai-probe check` beyond syntax: what can be known about a script without running it.
//!
//! - a call to a function that exists nowhere (`htp_get` → did you mean `http_get`?);
//! - a host function called with a number of arguments none of its signatures takes;
//! - a script that cannot end in a boolean (its last statement is a `let` or a constant that is
//!   not a boolean) and makes no named checks.
//!
//! Variables used before their definition are compile errors already (strict variables).
//! Rhai resolves functions when they are called, so a typo would otherwise be found in
//! production, at the first probe; this finds it in CI.

use std::collections::HashSet;

use rhai::{ASTNode, Expr, Stmt, AST};

use crate::{diagnostic::Diagnostic, host, trace::Pos};

/// Every function of the Rhai packages the engine registers (`engine::build`), by name. A unit
/// test compares this list with the engine's own (in test builds, which have Rhai's metadata),
/// so a Rhai upgrade that adds or drops a function fails the tests rather than the lint.
pub const RHAI_FUNCTIONS: &[&str] = &[
    "!",
    "!=",
    "%",
    "*",
    "**",
    "+",
    "+=",
    "-",
    "/",
    "<",
    "<=",
    "==",
    ">",
    ">=",
    "E",
    "PI",
    "abs",
    "acos",
    "acosh",
    "all",
    "append",
    "asin",
    "asinh",
    "atan",
    "atanh",
    "bits",
    "bytes",
    "ceiling",
    "chars",
    "chop",
    "clear",
    "contains",
    "cos",
    "cosh",
    "crop",
    "debug",
    "dedup",
    "drain",
    "end",
    "ends_with",
    "exit",
    "exp",
    "extract",
    "fill_with",
    "filter",
    "find",
    "find_map",
    "floor",
    "for_each",
    "fraction",
    "get",
    "get_fn_metadata_list",
    "hypot",
    "index_of",
    "insert",
    "int",
    "is_anonymous",
    "is_empty",
    "is_even",
    "is_exclusive",
    "is_finite",
    "is_inclusive",
    "is_infinite",
    "is_nan",
    "is_odd",
    "is_zero",
    "keys",
    "len",
    "ln",
    "log",
    "make_lower",
    "make_upper",
    "map",
    "max",
    "min",
    "mixin",
    "name",
    "order",
    "order_by",
    "order_desc",
    "pad",
    "parse_float",
    "parse_int",
    "parse_json",
    "pop",
    "print",
    "push",
    "range",
    "reduce",
    "reduce_rev",
    "remove",
    "replace",
    "retain",
    "reverse",
    "round",
    "set",
    "set_tag",
    "shift",
    "sign",
    "sin",
    "sinh",
    "some",
    "sort",
    "sort_by",
    "sort_desc",
    "splice",
    "split",
    "split_rev",
    "sqrt",
    "start",
    "starts_with",
    "sub_string",
    "tag",
    "take",
    "tan",
    "tanh",
    "to_binary",
    "to_blob",
    "to_chars",
    "to_debug",
    "to_degrees",
    "to_float",
    "to_hex",
    "to_int",
    "to_json",
    "to_lower",
    "to_octal",
    "to_radians",
    "to_string",
    "to_upper",
    "trim",
    "truncate",
    "values",
    "zip",
];

/// Functions the language itself provides (keywords that look like calls).
const KEYWORDS: &[&str] = &[
    "Fn",
    "call",
    "curry",
    "type_of",
    "is_def_fn",
    "is_def_var",
    "is_shared",
    "print",
    "debug",
];

/// Every problem found, each with its position.
pub fn lint(ast: &AST) -> Vec<Diagnostic> {
    let mut declared: HashSet<String> = HashSet::new();
    let mut script_fns: HashSet<String> = HashSet::new();
    for f in ast.iter_functions() {
        script_fns.insert(f.name.to_string());
        declared.extend(f.params.iter().map(|p| p.to_string()));
    }
    // Calls found, and every name the script declares (a variable holding a closure can be
    // called like a function).
    let mut calls: Vec<(String, usize, Pos)> = Vec::new();
    let mut uses_check = false;
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                declared.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                declared.insert(x.0.name.to_string());
                if let Some(counter) = &x.1 {
                    declared.insert(counter.name.to_string());
                }
            }
            Some(ASTNode::Stmt(Stmt::FnCall(f, pos)))
            | Some(ASTNode::Expr(Expr::FnCall(f, pos)))
                if f.op_token.is_none() =>
            {
                uses_check |= f.name == "check";
                calls.push((f.name.to_string(), f.args.len(), (*pos).into()));
            }
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => {
                uses_check |= f.name == "check";
                calls.push((f.name.to_string(), f.args.len() + 1, (*pos).into()));
            }
            _ => {}
        }
        true
    });

    let mut found = Vec::new();
    for (name, arity, pos) in calls {
        if script_fns.contains(&name) || declared.contains(&name) {
            continue;
        }
        if let Some(doc) = host::FUNCTIONS.iter().find(|d| d.name == name) {
            let arities: Vec<usize> = doc
                .signatures
                .iter()
                .map(|s| host::params(s).len())
                .collect();
            if !arities.contains(&arity) {
                let mut counts: Vec<String> = arities.iter().map(usize::to_string).collect();
                counts.dedup();
                let mut d = Diagnostic::new(
                    format!(
                        "{name} takes {} argument{}, not {arity}",
                        counts.join(" or "),
                        if arities == [1] { "" } else { "s" }
                    ),
                    pos,
                );
                d.notes
                    .push(format!("help: {name} takes: {}", doc.signatures.join("; ")));
                found.push(d);
            }
            continue;
        }
        if RHAI_FUNCTIONS.contains(&name.as_str()) || KEYWORDS.contains(&name.as_str()) {
            continue;
        }
        let candidates = host::FUNCTIONS
            .iter()
            .map(|d| d.name)
            .chain(RHAI_FUNCTIONS.iter().copied().filter(|n| n.len() > 2))
            .chain(script_fns.iter().map(String::as_str));
        let mut d = Diagnostic::new(format!("unknown function {name}"), pos);
        match crate::diagnostic::closest(&name, candidates) {
            Some(near) => d.notes.push(format!("help: did you mean {near}?")),
            None => d.notes.push(
                "help: `rhai-probe functions` lists the host functions; docs/functions.md the rest"
                    .into(),
            ),
        }
        found.push(d);
    }

    if !uses_check {
        if let Some(problem) = last_statement_problem(ast) {
            found.push(problem);
        }
    }
    found
}

/// The names of the functions a script calls, in order of first call.
pub fn called_functions(ast: &AST) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        let name = match path.last() {
            Some(ASTNode::Stmt(Stmt::FnCall(f, _)))
            | Some(ASTNode::Expr(Expr::FnCall(f, _)))
            | Some(ASTNode::Expr(Expr::MethodCall(f, _))) => Some(f.name.to_string()),
            _ => None,
        };
        if let Some(name) = name {
            if !names.contains(&name) {
                names.push(name);
            }
        }
        true
    });
    names
}

/// A last statement that certainly yields no boolean, in a script with no named checks.
fn last_statement_problem(ast: &AST) -> Option<Diagnostic> {
    let Some(last) = ast.statements().last() else {
        return Some(Diagnostic::new(
            "the script is empty; a probe must end with a boolean expression, e.g. load_avg() < 4.0",
            Pos::default(),
        ));
    };
    let what = match last {
        Stmt::Var(..) => "a let or const, which has no value",
        Stmt::While(..) | Stmt::Do(..) | Stmt::For(..) => "a loop, which has no value",
        Stmt::Expr(e) => match e.as_ref() {
            Expr::IntegerConstant(..) | Expr::FloatConstant(..) => "a number",
            Expr::StringConstant(..) | Expr::InterpolatedString(..) => "a string",
            Expr::Array(..) => "an array",
            Expr::Map(..) => "a map",
            Expr::Unit(..) => "()",
            _ => return None,
        },
        _ => return None,
    };
    let mut d = Diagnostic::new(
        format!("the script ends with {what}; a probe must end with a boolean"),
        last.position().into(),
    );
    d.notes.push(
        "help: end with a boolean expression (load_avg() < 4.0), or record named checks with check(name, ...)"
            .into(),
    );
    Some(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_of_rhai_functions_is_the_engines() {
        let host = crate::host::Host::new(
            crate::deadline::Deadline::start(std::time::Duration::ZERO),
            crate::trace::Trace::default(),
            "t".into(),
            rhai::Map::new(),
        );
        let engine = crate::engine::build(&host);
        let mut names: Vec<String> = engine
            .gen_fn_signatures(true)
            .into_iter()
            .map(|s| s.split('(').next().unwrap_or_default().to_string())
            .filter(|n| !n.contains('$') && !host::FUNCTIONS.iter().any(|d| d.name == n))
            .collect();
        names.sort();
        names.dedup();
        let mut listed: Vec<String> = RHAI_FUNCTIONS.iter().map(|s| s.to_string()).collect();
        listed.sort();
        assert_eq!(
            listed, names,
            "RHAI_FUNCTIONS is out of date; the engine has: {names:?}"
        );
    }

    fn lint_of(text: &str) -> Vec<String> {
        let host = crate::host::Host::new(
            crate::deadline::Deadline::start(std::time::Duration::from_secs(1)),
            crate::trace::Trace::default(),
            "t".into(),
            rhai::Map::new(),
        );
        let engine = crate::engine::build(&host);
        let ast = engine.compile(text).unwrap();
        lint(&ast)
            .into_iter()
            .map(|d| {
                format!(
                    "{}:{}: {} {}",
                    d.pos.line,
                    d.pos.col,
                    d.message,
                    d.notes.join(" ")
                )
            })
            .collect()
    }

    #[test]
    fn finds_typos_arity_and_endings() {
        assert_eq!(
            lint_of("htp_get(\"http://x/\").ok"),
            ["1:1: unknown function htp_get help: did you mean http_get?"]
        );
        assert_eq!(
            lint_of("let r = http_get(\"u\", #{}, 3);\nr.ok"),
            ["1:9: http_get takes 1 or 2 arguments, not 3 help: http_get takes: http_get(url: string) -> map; http_get(url: string, options: map) -> map"]
        );
        assert_eq!(
            lint_of("let x = load_avg();"),
            ["1:1: the script ends with a let or const, which has no value; a probe must end with a boolean help: end with a boolean expression (load_avg() < 4.0), or record named checks with check(name, ...)"]
        );
        assert!(lint_of("42")[0].contains("ends with a number"));
        // Method calls count the object; script functions and closures in variables are known.
        assert!(lint_of("fn ok(x) { x > 1 }\nlet f = |x| x > 2;\nlet s = \"abc\";\nok(3) && f(4) && s.contains(\"b\") && s.len() == 3 && type_of(s) == \"string\"").is_empty());
        assert!(lint_of("let r = #{body: \"{}\"};\nr.json().len() == 0").is_empty());
        assert!(lint_of("check(\"a\", true);\nlet done = 1;").is_empty());
    }
}

//! `rhai-probe check` beyond syntax: what can be known about a script without running it, from
//! the host functions' declarations (`host::decl`):
//!
//! - a call to a function that exists nowhere (`htp_get` → did you mean `http_get`?);
//! - a host function called with a number of arguments none of its signatures takes;
//! - a literal argument of the wrong type (`tcp_open("db", "5432")`);
//! - an option key a function does not have (`#{timout: "1s"}`), or a literal option value of
//!   the wrong type, in a literal options map;
//! - a key a host result does not have (`resp.stauts`), on a call or on a variable that holds
//!   one (`let resp = http_get(url)`);
//! - a script whose last statement has a known type that is not a boolean (`resp.status`, a
//!   map, a number), or, without named checks, no value at all (a `let`, a loop);
//! - a `loop` (or `while true`) with no `break`, `return` or `throw` in it, wherever it is.
//!
//! Variables used before their definition are compile errors already (strict variables).
//! Rhai resolves functions when they are called, so a typo would otherwise be found in
//! production, at the first probe; this finds it in CI. What depends on values computed at run
//! time (a URL built from a variable, a key read from JSON) is left to the run.

use std::collections::{HashMap, HashSet};

use rhai::{ASTNode, Expr, Stmt, AST};

use crate::{
    diagnostic::{closest, Diagnostic},
    host::{
        self,
        decl::{HostFn, Type},
    },
    trace::Pos,
};

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

/// Every problem found, each with its position, in the order of the script.
/// Where a script keeps state across runs (a `check` with options, `rate`, `remember`,
/// `recall`, `history`): `check` says such a script needs `--state-dir`.
pub fn state_uses(ast: &AST) -> Vec<(String, Pos)> {
    let mut uses = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::FnCall(f, pos)) | ASTNode::Expr(Expr::FnCall(f, pos))) =
            path.last()
        {
            let keeps = match f.name.as_str() {
                "check" => f.args.len() == 3,
                "rate" | "remember" | "recall" | "history" => true,
                _ => false,
            };
            if keeps && f.op_token.is_none() {
                uses.push((f.name.to_string(), (*pos).into()));
            }
        }
        true
    });
    uses
}

/// What a script's calls reach (`check --permissions`): from literal arguments, variables bound
/// once to a literal, `var_or(NAME, DEFAULT)` (the `--var` given, else the default) and `--var`
/// constants. Returns what was found, and each call whose target could not be told, with why.
pub fn permissions(
    ast: &AST,
    vars: &rhai::Map,
) -> (Vec<crate::permissions::Access>, Vec<(String, Pos)>) {
    use rhai::Dynamic;
    // Variables bound once (by `let`/`const`) and never assigned: their value, where known.
    let mut bound: HashMap<String, Option<Dynamic>> = HashMap::new();
    let value_of = |expr: &Expr, bound: &HashMap<String, Option<Dynamic>>| -> Option<Dynamic> {
        literal(expr, bound, vars)
    };
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                let value = value_of(&x.1, &bound);
                let name = x.0.name.to_string();
                // Bound twice: not one value.
                bound.entry(name).and_modify(|v| *v = None).or_insert(value);
            }
            Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                if let Expr::Variable(v, ..) = &x.1.lhs {
                    bound.insert(v.1.to_string(), None);
                }
            }
            Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                bound.insert(x.0.name.to_string(), None);
            }
            _ => {}
        }
        true
    });
    let mut found = Vec::new();
    let mut unresolved = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::FnCall(f, pos)) | ASTNode::Expr(Expr::FnCall(f, pos))) =
            path.last()
        {
            if let Some(decl) =
                host::find(&f.name).filter(|d| d.reach != host::decl::Reach::Nothing)
            {
                if f.op_token.is_none() {
                    let args: Vec<Option<Dynamic>> =
                        f.args.iter().map(|a| value_of(a, &bound)).collect();
                    match crate::permissions::accesses(decl, &args) {
                        Some(accesses) => found.extend(accesses),
                        None => unresolved.push((decl.name.to_string(), (*pos).into())),
                    }
                }
            }
        }
        true
    });
    found.sort();
    found.dedup();
    (found, unresolved)
}

/// The value of `expr` when it is known without running the script.
fn literal(
    expr: &Expr,
    bound: &HashMap<String, Option<rhai::Dynamic>>,
    vars: &rhai::Map,
) -> Option<rhai::Dynamic> {
    if let Some(value) = expr.get_literal_value(None) {
        return Some(value);
    }
    match expr {
        Expr::Variable(v, ..) => match bound.get(v.1.as_str()) {
            Some(value) => value.clone(),
            None => vars.get(v.1.as_str()).cloned(),
        },
        Expr::FnCall(f, _) if f.name == "var_or" && f.args.len() == 2 => {
            let name = f.args[0].get_literal_value(None)?.into_string().ok()?;
            match vars.get(name.as_str()) {
                Some(given) => Some(given.clone()),
                None => literal(&f.args[1], bound, vars),
            }
        }
        Expr::Map(x, _) => {
            // An options map with values unknown: those are (), which no target reads as one.
            let mut map = rhai::Map::new();
            for (key, value) in &x.0 {
                let v = literal(value, bound, vars).unwrap_or(rhai::Dynamic::UNIT);
                map.insert(key.name.as_str().into(), v);
            }
            Some(map.into())
        }
        _ => None,
    }
}

pub fn lint(ast: &AST) -> Vec<Diagnostic> {
    let mut declared: HashSet<String> = HashSet::new();
    let mut script_fns: HashSet<String> = HashSet::new();
    for f in ast.iter_functions() {
        script_fns.insert(f.name.to_string());
        declared.extend(f.params.iter().map(|p| p.to_string()));
    }
    let vars = Vars::of(ast, &declared);
    // Calls found, and every name the script declares (a variable holding a closure can be
    // called like a function).
    let mut calls: Vec<(String, usize, Pos)> = Vec::new();
    let mut uses_check = false;
    let mut found = Vec::new();
    let shadowed = |name: &str, declared: &HashSet<String>| {
        script_fns.contains(name) || declared.contains(name)
    };
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
                if let Some(decl) = host::find(&f.name).filter(|_| !shadowed(&f.name, &declared)) {
                    arguments(decl, &f.args, &vars, &mut found);
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(f, pos))) => {
                uses_check |= f.name == "check";
                calls.push((f.name.to_string(), f.args.len() + 1, (*pos).into()));
            }
            Some(ASTNode::Expr(e @ (Expr::Dot(..) | Expr::Index(..)))) => {
                if let Some(d) = result_key(e, &vars) {
                    found.push(d);
                }
            }
            Some(ASTNode::Stmt(s @ (Stmt::While(..) | Stmt::Do(..)))) if endless(s) => {
                let mut d = Diagnostic::new(
                    "this loop never ends: it has no break, return or throw",
                    s.position().into(),
                );
                d.notes.push(
                    "help: a probe stops at its operation limit (a script fault); give the loop a way out: a break once it is done, or a bounded for loop"
                        .into(),
                );
                found.push(d);
            }
            _ => {}
        }
        true
    });

    for (name, arity, pos) in calls {
        if script_fns.contains(&name) || declared.contains(&name) {
            continue;
        }
        if let Some(doc) = host::find(&name) {
            let arities: Vec<usize> = doc.arities();
            if !arities.contains(&arity) {
                let counts: Vec<String> = arities.iter().map(usize::to_string).collect();
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
        let candidates = host::functions()
            .map(|d| d.name)
            .chain(RHAI_FUNCTIONS.iter().copied().filter(|n| n.len() > 2))
            .chain(script_fns.iter().map(String::as_str));
        let mut d = Diagnostic::new(format!("unknown function {name}"), pos);
        match closest(&name, candidates) {
            Some(near) => d.notes.push(format!("help: did you mean {near}?")),
            None => d.notes.push(
                "help: `rhai-probe functions` lists the host functions; docs/functions.md the rest"
                    .into(),
            ),
        }
        found.push(d);
    }

    if let Some(problem) = last_statement_problem(ast, &vars, uses_check) {
        found.push(problem);
    }
    found.sort_by_key(|d| (d.pos.line, d.pos.col));
    found.dedup();
    found
}

/// What a variable is known to hold, from its `let`s: a name bound once (or always to the same
/// kind of value) and never assigned keeps that; anything else is unknown.
struct Vars(HashMap<String, Known>);

#[derive(Clone, Copy)]
enum Known {
    /// The map result of a host function.
    Result(&'static HostFn),
    Type(Type),
    Unknown,
}

impl Known {
    fn same(&self, other: &Known) -> bool {
        match (self, other) {
            (Known::Result(a), Known::Result(b)) => a.name == b.name,
            (Known::Type(a), Known::Type(b)) => a == b,
            _ => false,
        }
    }
}

impl Vars {
    fn of(ast: &AST, params: &HashSet<String>) -> Vars {
        let mut bound: HashMap<String, Known> = HashMap::new();
        let empty = Vars(HashMap::new());
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Stmt(Stmt::Var(x, _, _))) => {
                    let known = empty.type_of(&x.1);
                    bound
                        .entry(x.0.name.to_string())
                        .and_modify(|k| {
                            if !k.same(&known) {
                                *k = Known::Unknown
                            }
                        })
                        .or_insert(known);
                }
                Some(ASTNode::Stmt(Stmt::Assignment(x))) => {
                    if let Expr::Variable(v, ..) = &x.1.lhs {
                        bound.insert(v.1.to_string(), Known::Unknown);
                    }
                }
                Some(ASTNode::Stmt(Stmt::For(x, _))) => {
                    bound.insert(x.0.name.to_string(), Known::Unknown);
                }
                _ => {}
            }
            true
        });
        for name in params {
            bound.insert(name.clone(), Known::Unknown);
        }
        Vars(bound)
    }

    /// What `expr` certainly is, when that can be told without running it.
    fn type_of(&self, expr: &Expr) -> Known {
        match expr {
            Expr::BoolConstant(..) => Known::Type(Type::Bool),
            Expr::IntegerConstant(..) => Known::Type(Type::Int),
            Expr::FloatConstant(..) => Known::Type(Type::Float),
            Expr::StringConstant(..) | Expr::InterpolatedString(..) | Expr::CharConstant(..) => {
                Known::Type(Type::String)
            }
            Expr::Array(..) => Known::Type(Type::Array),
            Expr::Map(..) => Known::Type(Type::Map),
            Expr::Unit(..) => Known::Type(Type::Nothing),
            Expr::And(..) | Expr::Or(..) => Known::Type(Type::Bool),
            Expr::FnCall(f, _) if f.op_token.is_some() => match f.name.as_str() {
                "==" | "!=" | "<" | "<=" | ">" | ">=" | "!" => Known::Type(Type::Bool),
                _ => Known::Unknown,
            },
            Expr::FnCall(f, _) => match host::find(&f.name) {
                Some(decl) if decl.arities().contains(&f.args.len()) => match decl.returns() {
                    Some(Type::Map) if !decl.keys.is_empty() => Known::Result(decl),
                    Some(Type::Any) | None => Known::Unknown,
                    Some(t) => Known::Type(t),
                },
                _ => Known::Unknown,
            },
            Expr::Variable(v, ..) => self.0.get(v.1.as_str()).copied().unwrap_or(Known::Unknown),
            Expr::Dot(x, ..) => match (self.type_of(&x.lhs), &x.rhs) {
                (Known::Result(f), Expr::Property(p, _)) => {
                    f.key(&p.2).map_or(Known::Unknown, |k| Known::Type(k.ty))
                }
                _ => Known::Unknown,
            },
            _ => Known::Unknown,
        }
    }
}

/// A literal argument of a type no signature takes at its place, and the keys and values of a
/// literal options map.
fn arguments(f: &'static HostFn, args: &[Expr], vars: &Vars, found: &mut Vec<Diagnostic>) {
    let signatures: Vec<_> = f
        .parsed()
        .filter(|s| s.params.len() == args.len())
        .collect();
    let Some(first) = signatures.first() else {
        return; // the arity check reports it
    };
    for (i, arg) in args.iter().enumerate() {
        let Known::Type(got) = vars.type_of(arg) else {
            continue;
        };
        if signatures.iter().any(|s| s.params[i].ty.takes(got)) {
            continue;
        }
        let param = first.params[i];
        let mut d = Diagnostic::new(
            format!(
                "{}'s {} is {}, not {}",
                f.name,
                param.name,
                param.ty.described(),
                got.described()
            ),
            arg.position().into(),
        );
        match (arg, param.ty) {
            (Expr::StringConstant(text, _), Type::Int) if text.trim().parse::<i64>().is_ok() => d
                .notes
                .push(format!("help: write `{}` without quotes", text.trim())),
            (Expr::IntegerConstant(n, _), Type::Float) => {
                d.notes.push(format!("help: write `{n}.0`"))
            }
            _ => d.notes.push(format!(
                "help: {} takes: {}",
                f.name,
                f.signatures.join("; ")
            )),
        }
        found.push(d);
    }
    // A literal options map: the last argument where the signature names `options`.
    let Some(Expr::Map(map, _)) = args.last() else {
        return;
    };
    if first.params.last().map(|p| p.name) != Some("options") {
        return;
    }
    for (key, value) in &map.0 {
        let at: Pos = key.pos.into();
        let Some(opt) = f.option(&key.name) else {
            let mut d = Diagnostic::new(
                format!(
                    "{}: {}",
                    f.name,
                    host::options::unknown(&key.name, &f.option_keys())
                ),
                at,
            );
            if let Some(near) = closest(&key.name, f.option_keys().into_iter()) {
                d.notes.push(format!("help: write `{near}`"));
            }
            found.push(d);
            continue;
        };
        if let Known::Type(got) = vars.type_of(value) {
            if got != Type::Nothing && !opt.ty.takes(got) {
                found.push(Diagnostic::new(
                    format!(
                        "{}: option '{}' must be {}, got {}",
                        f.name,
                        opt.key,
                        opt.ty.described(),
                        got.described()
                    ),
                    value.position().into(),
                ));
            }
        }
    }
}

/// `resp.stauts` where `resp` is known to hold a host result that has no such key.
fn result_key(expr: &Expr, vars: &Vars) -> Option<Diagnostic> {
    let (x, index) = match expr {
        Expr::Dot(x, ..) => (x, false),
        Expr::Index(x, ..) => (x, true),
        _ => return None,
    };
    let Known::Result(f) = vars.type_of(&x.lhs) else {
        return None;
    };
    let (key, pos) = match (&x.rhs, index) {
        (Expr::Property(p, pos), false) => (p.2.as_str(), *pos),
        (Expr::Dot(y, ..) | Expr::Index(y, ..), false) => match &y.lhs {
            Expr::Property(p, pos) => (p.2.as_str(), *pos),
            _ => return None,
        },
        (Expr::StringConstant(s, pos), true) => (s.as_str(), *pos),
        _ => return None,
    };
    if f.key(key).is_some() {
        return None;
    }
    let names: Vec<&str> = f.keys.iter().map(|k| k.name).collect();
    let mut d = Diagnostic::new(
        format!("{}'s result has no key '{key}'", f.name),
        pos.into(),
    );
    d.notes.push(match closest(key, names.iter().copied()) {
        Some(near) => format!(
            "help: did you mean '{near}'? ({}'s result has {})",
            f.name,
            names.join(", ")
        ),
        None => format!("help: {}'s result has {}", f.name, names.join(", ")),
    });
    Some(d)
}

/// A `loop` or `while true` (or `do … while true`) that nothing in it can leave: no `break` of
/// its own (one in an inner loop leaves that one), no `return`, `throw` or `exit()`.
fn endless(stmt: &Stmt) -> bool {
    let forever = match stmt {
        Stmt::While(x, _) => matches!(x.expr, Expr::Unit(..) | Expr::BoolConstant(true, _)),
        Stmt::Do(x, flags, _) => {
            !flags.intersects(rhai::ASTFlags::NEGATED)
                && matches!(x.expr, Expr::BoolConstant(true, _))
        }
        _ => false,
    };
    if !forever {
        return false;
    }
    let mut leaves = false;
    let mut inner = Vec::new();
    stmt.walk(&mut inner, &mut |nodes: &[ASTNode]| {
        let depth = nodes[1..]
            .iter()
            .filter(|n| {
                matches!(
                    n,
                    ASTNode::Stmt(Stmt::While(..) | Stmt::Do(..) | Stmt::For(..))
                )
            })
            .count();
        match nodes.last() {
            Some(ASTNode::Stmt(Stmt::BreakLoop(_, flags, _)))
                if flags.intersects(rhai::ASTFlags::BREAK) && depth == 0 =>
            {
                leaves = true
            }
            Some(ASTNode::Stmt(Stmt::Return(..))) => leaves = true,
            Some(ASTNode::Stmt(Stmt::FnCall(f, _)) | ASTNode::Expr(Expr::FnCall(f, _)))
                if f.name == "exit" =>
            {
                leaves = true
            }
            _ => {}
        }
        !leaves
    });
    !leaves
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

/// A last statement that certainly yields no boolean: one of a known other type, or, in a
/// script with no named checks (whose verdict is then theirs), one with no value.
fn last_statement_problem(ast: &AST, vars: &Vars, uses_check: bool) -> Option<Diagnostic> {
    let Some(last) = ast.statements().last() else {
        return Some(Diagnostic::new(
            "the script is empty; a probe must end with a boolean expression, e.g. load_avg() < 4.0",
            Pos::default(),
        ));
    };
    let valueless = match last {
        Stmt::Var(..) => Some("a let or const, which has no value"),
        Stmt::While(..) | Stmt::Do(..) | Stmt::For(..) => Some("a loop, which has no value"),
        _ => None,
    };
    let what = match (valueless, last) {
        (Some(what), _) if !uses_check => what.to_string(),
        (Some(_), _) => return None,
        (None, Stmt::Expr(e)) => match vars.type_of(e) {
            Known::Type(Type::Bool | Type::Any) | Known::Unknown => return None,
            Known::Type(Type::Nothing) if uses_check => return None,
            Known::Type(Type::Nothing) => "()".to_string(),
            Known::Type(t) => described_value(e, t),
            Known::Result(f) => format!("the map {}() returns", f.name),
        },
        (None, Stmt::FnCall(f, _)) => match host::find(&f.name).and_then(HostFn::returns) {
            Some(Type::Bool | Type::Any | Type::Nothing) | None => return None,
            Some(t) => format!("{} ({}() returns {})", t.described(), f.name, t.word()),
        },
        _ => return None,
    };
    let mut d = Diagnostic::new(
        format!("the script ends with {what}; a probe must end with a boolean"),
        last.position().into(),
    );
    d.notes.push(
        "help: end with a boolean expression, e.g. `load_avg() < 4.0`, or record named checks with check(name, ...)"
            .into(),
    );
    Some(d)
}

fn described_value(e: &Expr, t: Type) -> String {
    match (e, t) {
        (Expr::IntegerConstant(..) | Expr::FloatConstant(..), _) => "a number".into(),
        (Expr::StringConstant(..) | Expr::InterpolatedString(..), _) => "a string".into(),
        (Expr::Array(..), _) => "an array".into(),
        (Expr::Map(..), _) => "a map".into(),
        (Expr::Dot(x, ..), t) => match &x.rhs {
            Expr::Property(p, _) => format!("{} (.{} is {})", t.described(), p.2, t.word()),
            _ => t.described().into(),
        },
        (Expr::FnCall(f, _), t) => format!("{} ({}() returns {})", t.described(), f.name, t.word()),
        (_, t) => t.described().into(),
    }
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
            .filter(|n| !n.contains('$') && host::find(n).is_none())
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
            ["1:1: the script ends with a let or const, which has no value; a probe must end with a boolean help: end with a boolean expression, e.g. `load_avg() < 4.0`, or record named checks with check(name, ...)"]
        );
        assert!(lint_of("42")[0].contains("ends with a number"));
        // Method calls count the object; script functions and closures in variables are known.
        assert!(lint_of("fn ok(x) { x > 1 }\nlet f = |x| x > 2;\nlet s = \"abc\";\nok(3) && f(4) && s.contains(\"b\") && s.len() == 3 && type_of(s) == \"string\"").is_empty());
        assert!(lint_of("let r = #{body: \"{}\"};\nr.json().len() == 0").is_empty());
        assert!(lint_of("check(\"a\", true);\nlet done = 1;").is_empty());
    }
}

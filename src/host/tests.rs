//! The walk over every declaration: each function registered is declared, completely, and
//! appears everywhere a declaration is read (the engine, `functions`, the docs, the stubs of
//! `rhai-probe test`, the lint, masking).

use std::time::Duration;

use super::{
    decl::{Fails, Signature, Stub, Time, Type},
    functions, Host, HostFn,
};
use crate::{deadline::Deadline, trace::Trace};

fn host(deadline: Duration) -> std::rc::Rc<Host> {
    Host::new(
        Deadline::start(deadline),
        Trace::default(),
        "walk".into(),
        rhai::Map::new(),
    )
}

#[test]
fn every_declaration_is_complete_and_consistent() {
    let mut names = Vec::new();
    for f in functions() {
        assert!(!names.contains(&f.name), "{} is declared twice", f.name);
        names.push(f.name);
        assert!(!f.summary.is_empty(), "{}: no summary", f.name);
        assert!(!f.signatures.is_empty(), "{}: no signature", f.name);
        for text in f.signatures {
            let s = Signature::parse(text)
                .unwrap_or_else(|| panic!("{}: cannot read the signature {text:?}", f.name));
            assert!(text.starts_with(&format!("{}(", f.name)), "{text}");
            // Options are the last parameter, named so, and declared.
            for (i, p) in s.params.iter().enumerate() {
                if p.name == "options" {
                    assert_eq!(p.ty, Type::Map, "{text}");
                    assert_eq!(i, s.params.len() - 1, "{text}");
                    assert!(
                        !f.options.is_empty(),
                        "{text}: takes options but declares none"
                    );
                }
            }
        }
        let takes_options = f
            .parsed()
            .any(|s| s.params.iter().any(|p| p.name == "options"));
        assert_eq!(takes_options, !f.options.is_empty(), "{}: options", f.name);
        let returns = f.returns();
        assert!(
            returns.is_some(),
            "{}: signatures disagree on the result",
            f.name
        );
        // A map result lists its keys; nothing else has keys. grpc_health_list's map is keyed
        // by the server's service names, which no declaration can list.
        assert_eq!(
            returns == Some(Type::Map) && f.name != "grpc_health_list",
            !f.keys.is_empty(),
            "{}: result keys",
            f.name
        );
        // One rule per kind (docs/functions.md, "Errors"): a yes-or-no answer about a peer is
        // false with the reason; such a function returns a boolean and talks to the network.
        if f.fails == Fails::False {
            assert_eq!(returns, Some(Type::Bool), "{}", f.name);
            assert_eq!(f.time, Time::Network, "{}", f.name);
        }
        // Everything that talks to a peer takes a timeout and is bounded by the deadline.
        if f.time == Time::Network && !f.options.is_empty() {
            assert!(
                f.option("timeout").is_some(),
                "{}: no timeout option",
                f.name
            );
        }
        // What reads the world is stubbed; what does not runs for real.
        if matches!(f.time, Time::Network | Time::Local) {
            assert!(f.stubbed(), "{} reads the world but has no stub", f.name);
        }
        // A parameter that carries a URL or a DSN is masked.
        for s in f.parsed() {
            for (i, p) in s.params.iter().enumerate() {
                if matches!(p.name, "url" | "dsn") {
                    assert!(
                        f.secrets.iter().any(|x| x.arg == i),
                        "{}: its {} is not declared secret",
                        f.name,
                        p.name
                    );
                }
            }
        }
        for secret in f.secrets {
            for s in f.parsed() {
                assert_eq!(s.params[secret.arg].ty, Type::String, "{}", f.name);
            }
        }
    }
    assert!(names.len() >= 22, "{names:?}");
}

/// The engine's signature of a registered native function, in the declarations' words:
/// `http_get(&str, Map)` → `http_get(string, map)`.
fn declared_form(signature: &str) -> Option<(String, Vec<&'static str>)> {
    let (name, rest) = signature.split_once('(')?;
    let inside = &rest[..rest.find(") ->").or_else(|| rest.rfind(')'))?];
    let mut types = Vec::new();
    for param in inside.split(", ").filter(|p| !p.is_empty()) {
        let ty = param.rsplit(": ").next()?.trim();
        let ty = ty.rsplit("::").next().unwrap_or(ty);
        types.push(match ty {
            "&str" | "ImmutableString" | "String" | "string" => "string",
            "i64" | "INT" => "int",
            "f64" | "FLOAT" => "float",
            "bool" => "bool",
            "Map" | "map" => "map",
            "Array" | "array" | "Vec<Dynamic>" => "array",
            "FnPtr" => "closure",
            "Dynamic" | "?" => "any",
            "NativeCallContext" => continue,
            _ => return None,
        });
    }
    Some((name.to_string(), types))
}

#[test]
fn the_engine_has_exactly_the_declared_functions() {
    let host = host(Duration::ZERO);
    let engine = crate::engine::build(&host);
    let mut registered: Vec<(String, Vec<&str>)> = engine
        .gen_fn_signatures(false)
        .into_iter()
        .filter_map(|s| declared_form(&s))
        .filter(|(name, _)| !name.contains('$'))
        .collect();
    registered.sort();
    registered.dedup();
    // Every registered function is declared...
    for (name, types) in &registered {
        assert!(
            super::find(name).is_some(),
            "{name}({}) is registered but has no declaration (host/decl.rs)",
            types.join(", ")
        );
    }
    // ...and every declared signature is registered with the declared types (`check` takes
    // any value in its second argument, to say what it got).
    for f in functions() {
        for s in f.parsed() {
            let want: Vec<&str> = s.params.iter().map(|p| p.ty.word()).collect();
            let found = registered.iter().any(|(name, types)| {
                name == f.name
                    && types.len() == want.len()
                    && types.iter().zip(&want).all(|(t, w)| t == w || *t == "any")
            });
            assert!(
                found,
                "{}({}) is declared but not registered; the engine has {:?}",
                f.name,
                want.join(", "),
                registered
                    .iter()
                    .filter(|(n, _)| n == f.name)
                    .collect::<Vec<_>>()
            );
        }
    }
}

/// docs/functions.md with every function's generated tables in place: replaced where they are,
/// put after the section's first code block where they are not yet.
fn with_doc_tables(reference: &str) -> String {
    let mut text = reference.to_string();
    for f in functions() {
        let Some(tables) = super::doc_tables(f) else {
            continue;
        };
        let start = format!("<!-- generated from the declaration of {};", f.name);
        let end = format!("<!-- end of {} -->\n", f.name);
        if let (Some(a), Some(b)) = (text.find(&start), text.find(&end)) {
            text.replace_range(a..b + end.len(), &tables);
        } else if let Some(section) = text.find(&format!("## {}\n", f.name)) {
            let block = text[section..].find("```\n").map(|i| section + i);
            let close = block.and_then(|b| text[b + 4..].find("```\n").map(|i| b + 4 + i + 4));
            if let Some(at) = close {
                text.insert_str(at, &format!("\n{tables}"));
            }
        }
    }
    text
}

#[test]
fn every_function_is_in_functions_and_the_docs() {
    let text = super::reference(crate::cli::ListFormat::Text);
    let json = super::reference(crate::cli::ListFormat::Json);
    let table = super::reference(crate::cli::ListFormat::Markdown);
    let reference = include_str!("../../docs/functions.md");
    let expected = with_doc_tables(reference);
    if std::env::var_os("RHAI_PROBE_WRITE_DOCS").is_some() {
        std::fs::write(
            concat!(env!("CARGO_MANIFEST_DIR"), "/docs/functions.md"),
            &expected,
        )
        .unwrap();
    }
    assert!(
        reference == expected,
        "docs/functions.md's tables of keys and options differ from the declarations; \
         `RHAI_PROBE_WRITE_DOCS=1 cargo test --lib every_function_is_in_functions` rewrites them"
    );
    assert!(
        reference.contains(&format!("-->\n{table}<!-- end of generated table -->")),
        "docs/functions.md's table differs; paste the output of \
         `rhai-probe functions --format markdown`:\n{table}"
    );
    let testing = include_str!("../../docs/testing.md");
    let stubs = crate::testing::stub_table();
    assert!(
        testing.contains(&format!("-->\n{stubs}<!-- end of generated table -->")),
        "docs/testing.md's stub table differs; paste the output of \
         `rhai-probe functions --format stubs`:\n{stubs}"
    );
    let defs = crate::defs::definitions();
    for f in functions() {
        assert!(text.contains(f.summary), "functions lacks {}", f.name);
        assert!(
            json.contains(&format!("\"name\": \"{}\"", f.name)),
            "{}",
            f.name
        );
        assert!(
            reference.contains(&format!("## {}\n", f.name)),
            "docs/functions.md has no section for {}",
            f.name
        );
        for signature in f.signatures {
            let plain = signature.split(" -> ").next().unwrap();
            assert!(reference.contains(plain), "docs/functions.md lacks {plain}");
        }
        if let Some(tables) = super::doc_tables(f) {
            assert!(
                reference.contains(&tables),
                "docs/functions.md lacks the tables of {}",
                f.name
            );
        }
        assert!(
            defs.contains(&format!("fn {}(", f.name)),
            "defs lack {}",
            f.name
        );
    }
}

#[test]
fn every_function_is_known_to_the_lint_and_the_stubs() {
    let host = host(Duration::from_secs(1));
    let mut engine = crate::engine::build(&host);
    // As `check` compiles: the optimizer would fold a literal options map into a constant.
    engine.set_optimization_level(rhai::OptimizationLevel::None);
    for f in functions() {
        // One argument too many is an arity error naming the function.
        let most = f.arities().into_iter().max().unwrap();
        let args = vec!["1"; most + 1].join(", ");
        let ast = engine.compile(format!("{}({args})", f.name)).unwrap();
        let found: Vec<String> = crate::lint::lint(&ast)
            .into_iter()
            .map(|d| d.message)
            .collect();
        assert!(
            found
                .iter()
                .any(|m| m.starts_with(&format!("{} takes ", f.name))),
            "{}: {found:?}",
            f.name
        );
        // An option it does not have is named, with the ones it has.
        if let Some(first) = f.options.first() {
            let mut args: Vec<String> = f
                .parsed()
                .last()
                .unwrap()
                .params
                .iter()
                .map(|p| p.ty.word().to_string())
                .collect();
            let typo = format!("{}x", first.key);
            args.pop();
            let args: Vec<&str> = args
                .iter()
                .map(|t| match t.as_str() {
                    "int" => "1",
                    "string" => "\"a\"",
                    _ => "()",
                })
                .collect();
            let call = format!(
                "{}({}#{{{typo}: 1}})",
                f.name,
                args.iter().map(|a| format!("{a}, ")).collect::<String>()
            );
            let ast = engine.compile(&call).unwrap();
            let found: Vec<String> = crate::lint::lint(&ast)
                .into_iter()
                .map(|d| d.message)
                .collect();
            assert!(
                found
                    .iter()
                    .any(|m| m.contains(&format!("unknown option '{typo}'"))),
                "{call}: {found:?}"
            );
        }
        // A stubbed function's example is a valid stub, and a typo in it is not.
        if let Stub::Answer { example, .. } = f.stub {
            let head = format!(
                "[[case]]\nname = \"c\"\nexpect = \"healthy\"\nstubs.{} = ",
                f.name
            );
            crate::testing::parse_cases(&format!("{head}{example}\n"), "walk").unwrap();
            assert!(crate::testing::parse_cases(
                &format!(
                    "[[case]]\nname = \"c\"\nexpect = \"healthy\"\nstubs.{}x = {example}\n",
                    f.name
                ),
                "walk"
            )
            .is_err());
            if !f.keys.is_empty() {
                let err = crate::testing::parse_cases(&format!("{head}{{ nokey = 1 }}\n"), "walk")
                    .unwrap_err();
                assert!(err.contains("has no key 'nokey'"), "{err}");
            }
        }
    }
}

#[test]
fn declared_secrets_never_reach_the_trace() {
    for f in functions().filter(|f| !f.secrets.is_empty()) {
        // Redis and NATS read `scheme://secret@host` as a password or token. Each form has its
        // own secret: one masked as a password is remembered, and would hide a leak of the other.
        let secret = |form: &str| format!("walk-{}-{form}-s3cret", f.name);
        let mut logins = vec![(secret("pw"), format!("probe:{}@", secret("pw")))];
        if matches!(f.name, "redis_ping" | "nats_ping") {
            logins.push((secret("lone"), format!("{}@", secret("lone"))));
        }
        let host = host(Duration::from_millis(300));
        let engine = crate::engine::build(&host);
        for (s, (secret, login)) in f
            .parsed()
            .flat_map(|s| logins.iter().map(move |l| (s.clone(), l)))
        {
            let args: Vec<String> = s
                .params
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    if f.secrets.iter().any(|x| x.arg == i) {
                        // Port 1 on loopback: refused at once, no traffic elsewhere.
                        format!("\"{}://{login}127.0.0.1:1/{}\"", scheme(f).0, scheme(f).1)
                    } else {
                        match p.ty {
                            Type::Map => "#{timeout: \"200ms\"}".into(),
                            Type::Int => "1".into(),
                            _ => "\"SELECT 1\"".into(),
                        }
                    }
                })
                .collect();
            let call = format!("{}({})", f.name, args.join(", "));
            let result = engine.eval::<rhai::Dynamic>(&call);
            let trace = host.restart(Deadline::start(Duration::from_millis(300)));
            let shown = format!("{result:?} {:?}", trace.calls);
            assert!(
                !shown.contains(secret.as_str()),
                "{call} showed its secret: {shown}"
            );
            assert!(!trace.calls.is_empty(), "{call} made no call: {shown}");
        }
    }
}

/// A URL scheme and path for a function's secret argument.
fn scheme(f: &HostFn) -> (&'static str, &'static str) {
    match f.name {
        "http_get" | "http_request" => ("http", "health"),
        "redis_ping" => ("redis", "0"),
        "amqp_ping" => ("amqp", "vhost"),
        "mqtt_ping" => ("mqtt", ""),
        "nats_ping" => ("nats", ""),
        "memcached_ping" => ("memcached", ""),
        "sql_ping" | "sql_scalar" => ("postgres", "db"),
        other => panic!("{other}: add its URL scheme to this walk"),
    }
}

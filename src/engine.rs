//! The one place a Rhai `Engine` is built, for `run` and `check` alike: sandbox limits, the
//! deadline hook, where `print` goes, and the host functions.
//!
//! `Engine::new_raw()` plus the packages a probe needs, not `Engine::new()`: `new()` also
//! installs a file module resolver (`import` reading files) that a probe must not have, and
//! packages a probe has no use for. `eval` is disabled so that what `check` compiles is all the
//! script can run.
//!
//! Start-up is most of what a short probe costs, and registering the packages' ~360 generated
//! functions (each hashed, its metadata boxed, put in a table that grows by rehashing) was most
//! of start-up: 0.26 M of a `true` script's 0.39 M instructions and 3,100 of the 6,900 cache
//! lines it touched. So they are not registered: the packages' modules keep them in their static
//! manifests, and a call looks one up there. Rhai scans the manifests on each such lookup
//! (hashing every function), which made a 5,000-iteration loop calling a script function take
//! 65 ms instead of 9.4; the vendored copy (vendor/rhai, see vendor/README.md) finds them in a
//! table sorted by hash, built on the first lookup, and the loop costs what it did with every
//! function registered (93.9 M instructions against 90.6 M; 209.7 M scanning).
//!
//! The packages go into one module, as Rhai's own `StandardPackage` does, which is not indexed:
//! `Package::new()` ends with `build_index`, which copies every function into a second table
//! for namespace-qualified calls (`module::fn()`). This build has no modules (`no_module`), and
//! a global module's functions are looked up in their first table only.

use std::{cell::Cell, rc::Rc};

use rhai::{
    packages::{
        BasicArrayPackage, BasicMapPackage, BasicMathPackage, CorePackage, LogicPackage,
        MoreStringPackage, Package,
    },
    Dynamic, Engine, Module,
};

use crate::host::{self, Host};

/// Sandbox limits. Generous for a probe (a few checks), tight enough that a runaway script
/// stops long before it can hurt the pod it guards. Documented in docs/security.md.
pub mod limits {
    /// Rhai operations per run (a 200-line script with 20 checks uses a few thousand).
    pub const OPERATIONS: u64 = 1_000_000;
    /// Nested function calls (recursion depth).
    pub const CALL_LEVELS: usize = 32;
    /// Expression nesting at the top level and inside functions.
    pub const EXPR_DEPTH: usize = 64;
    pub const FN_EXPR_DEPTH: usize = 32;
    /// Bytes in one string (an `http_get` body is at most 1 MiB).
    pub const STRING_SIZE: usize = 2 * 1024 * 1024;
    pub const ARRAY_SIZE: usize = 10_000;
    pub const MAP_SIZE: usize = 10_000;
    pub const VARIABLES: usize = 1_000;
    pub const FUNCTIONS: usize = 256;
    /// Bytes of `print`/`debug` log lines per run; the rest is dropped with a note, so a
    /// script printing in a loop cannot flood kubelet's event or the pod's log.
    pub const PRINT_BYTES: usize = 4 * 1024;
}

/// What the `on_progress` hook raises: the same `ErrorTerminated` as a host call that runs out
/// of time, so both end as exit 4.
pub const STOPPED_RUNNING: &str = "while the script was running";

/// An engine with every host function: for `serve`, `check` and the tests.
pub fn build(host: &Rc<Host>) -> Engine {
    build_with(host, &|_| true)
}

/// An engine for one run of `text`, with just the host functions whose names the text contains:
/// registering one costs a probe's start-up, whether or not it is called, so a script pays for
/// the functions it names and nothing for the others (the brokers', say). A name can also reach
/// a call through a function pointer made from a string (`Fn("tcp_" + "open")`): a text with
/// `Fn` in it gets every function.
pub fn for_script(host: &Rc<Host>, text: &str) -> Engine {
    if text.contains("Fn") {
        return build(host);
    }
    build_with(host, &|f| text.contains(f.name))
}

fn build_with(host: &Rc<Host>, wanted: &dyn Fn(&host::HostFn) -> bool) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(packages().into());

    engine
        .set_max_operations(limits::OPERATIONS)
        .set_max_call_levels(limits::CALL_LEVELS)
        .set_max_expr_depths(limits::EXPR_DEPTH, limits::FN_EXPR_DEPTH)
        .set_max_string_size(limits::STRING_SIZE)
        .set_max_array_size(limits::ARRAY_SIZE)
        .set_max_map_size(limits::MAP_SIZE)
        .set_max_variables(limits::VARIABLES)
        .set_max_functions(limits::FUNCTIONS)
        .set_strict_variables(true)
        .set_fail_on_invalid_map_property(true);
    engine.disable_symbol("eval");

    let clock = host.clone();
    engine.on_progress(move |ops| {
        // Instant::now() is a vDSO call; every 256 operations is plenty to stop on time.
        if ops & 0xff == 0 && clock.deadline().expired() {
            Some(Dynamic::from(STOPPED_RUNNING))
        } else {
            None
        }
    });

    let printer = host.clone();
    engine.on_print(move |text| log_script_output(&printer.printed, log::Level::Info, text));
    let debugger = host.clone();
    engine.on_debug(move |text, _, pos| {
        let line = format!("{text} (line {})", pos.line().unwrap_or(0));
        log_script_output(&debugger.printed, log::Level::Debug, &line);
    });

    host::register(&mut engine, host, wanted);
    engine
}

/// Rhai's packages a script may call, in one module, their generated functions left in the
/// packages' manifests until called (tested: every one answers as when registered). One function
/// is defined by two packages (`to_int` of a character); the same one wins here as when they
/// were registered one by one (tested).
fn packages() -> Module {
    let mut module = Module::new();
    CorePackage::init(&mut module);
    BasicArrayPackage::init(&mut module);
    BasicMapPackage::init(&mut module);
    BasicMathPackage::init(&mut module);
    MoreStringPackage::init(&mut module);
    LogicPackage::init(&mut module);
    module
}

fn log_script_output(printed: &Cell<usize>, level: log::Level, text: &str) {
    // Count what the log line costs, timestamp and all, not just the text.
    const LINE_OVERHEAD: usize = 48;
    let used = printed.get();
    if used > limits::PRINT_BYTES {
        return;
    }
    let cost = text.len() + LINE_OVERHEAD;
    printed.set(used + cost);
    if used + cost > limits::PRINT_BYTES {
        log::log!(
            level,
            "print: further script output dropped (limit {} bytes)",
            limits::PRINT_BYTES
        );
    } else {
        log::log!(level, "print: {text}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{deadline::Deadline, trace::Trace};
    use std::time::Duration;

    fn engine() -> Engine {
        let host = Host::new(
            Deadline::start(Duration::from_secs(5)),
            Trace::default(),
            "test".into(),
            rhai::Map::new(),
        );
        build(&host)
    }

    /// A sample argument for each type a signature names.
    fn sample(ty: &str) -> &'static str {
        match ty {
            "string" => "\"x\"",
            "int" => "1",
            "float" => "1.0",
            "bool" => "true",
            "map" => "#{}",
            "closure" => "|| true",
            _ => "1",
        }
    }

    #[test]
    fn every_documented_signature_is_registered() {
        // A zero deadline: host calls stop before any I/O, so this touches no network.
        let host = Host::new(
            Deadline::start(Duration::ZERO),
            Trace::default(),
            "test".into(),
            rhai::Map::new(),
        );
        let engine = build(&host);
        let mut checked = 0;
        for doc in host::functions() {
            for (signature, parsed) in doc.signatures.iter().zip(doc.parsed()) {
                let args: Vec<&str> = parsed.params.iter().map(|p| sample(p.ty.word())).collect();
                let call = format!("{}({})", doc.name, args.join(", "));
                if let Err(err) = engine.eval::<Dynamic>(&call) {
                    assert!(
                        !matches!(*err, rhai::EvalAltResult::ErrorFunctionNotFound(..)),
                        "{signature} is documented but not registered: {err}"
                    );
                }
                checked += 1;
            }
        }
        assert!(checked >= 12, "{checked}");
    }

    fn signatures(module: &Module) -> Vec<String> {
        module
            .gen_fn_signatures_with_mapper(std::borrow::Cow::Borrowed)
            .collect()
    }

    #[test]
    fn one_module_holds_what_the_packages_held_one_by_one() {
        let mut separately: Vec<String> = [
            CorePackage::new().as_shared_module(),
            BasicArrayPackage::new().as_shared_module(),
            BasicMapPackage::new().as_shared_module(),
            BasicMathPackage::new().as_shared_module(),
            MoreStringPackage::new().as_shared_module(),
            LogicPackage::new().as_shared_module(),
        ]
        .iter()
        .flat_map(|m| signatures(m))
        .collect();
        let combined = packages();
        // The packages' generated functions are looked up in their manifests when first called;
        // registering them lists them.
        let mut materialized = combined.clone();
        materialized.register_lazy_functions();
        let mut together = signatures(&materialized);
        separately.sort();
        together.sort();
        assert!(together.len() > 300, "{}", together.len());
        // One function is defined twice: `to_int` of a character, by the string package and
        // (registered directly, shown as `to_int(_)`) by the maths package. One by one, the
        // maths package came later and won; in one module, a directly registered function wins
        // over the packages' generated ones. The same one either way, and the only difference.
        let shadowed = separately
            .iter()
            .position(|s| s == "to_int(ch: char) -> i64")
            .expect("the string package's to_int");
        separately.remove(shadowed);
        assert_eq!(together, separately);
        // Still flagged as Rhai's own library, as each of these packages is (the optimizer
        // never mistakes one of its functions for an override of a built-in one).
        assert!(combined.is_standard_lib());
        // And it works unindexed: operators, iterators, methods from every package.
        let engine = engine();
        let got = engine
            .eval::<String>(
                r#"let a = [3, 1, 2]; a.sort(); let m = #{k: a.len()}; let t = 0;
                   for i in 0..4 { t += i; } let s = "ab"; s.pad(4, '-');
                   `${a} ${m.keys()} ${t} ${s} ${abs(-2)} ${sqrt(16.0)} ${to_int('a')} ${max(1, 5)}`"#,
            )
            .unwrap();
        assert_eq!(got, "[1, 2, 3] [\"k\"] 6 ab-- 2 4.0 97 5");
    }

    /// A script expression calling the function a signature describes, with sample arguments;
    /// `None` for parameter types a script cannot make here.
    fn call_for(signature: &str) -> Option<String> {
        let (name, rest) = signature.split_once('(')?;
        let params = &rest[..rest.find(')')?];
        let mut args = Vec::new();
        for param in params.split(", ").filter(|p| !p.is_empty()) {
            let ty = param.rsplit(": ").next()?.trim_start_matches("&mut ");
            args.push(match ty {
                "i64" | "Dynamic" => "2",
                "f64" => "2.5",
                "&str" | "ImmutableString" => "\"ab\"",
                "char" => "'a'",
                "bool" => "true",
                "Array" => "[1, 2]",
                "Map" => "#{a: 1}",
                "Range<i64>" => "(0..2)",
                "RangeInclusive<i64>" => "(0..=2)",
                "FnPtr" => "|x| x",
                _ => return None,
            });
        }
        let ident = name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        Some(match (name, args.as_slice()) {
            // Blocks for its argument in seconds (the engine replaces it with the host's).
            ("sleep", _) => return None,
            (_, _) if ident => format!("{name}({})", args.join(", ")),
            (_, [a]) if name.starts_with("get$") => format!("{a}.{}", &name[4..]),
            (_, [a, b]) if name.starts_with("set$") => {
                format!("{{ let v = {a}; v.{} = {b}; v }}", &name[4..])
            }
            (_, [a, b]) if name.ends_with('=') && name != "==" && name != "!=" => {
                format!("{{ let v = {a}; v {name} {b}; v }}")
            }
            (_, [a, b]) => format!("{a} {name} {b}"),
            (_, [a]) => format!("{name}{a}"),
            _ => return None,
        })
    }

    #[test]
    fn lazy_packages_call_what_registered_ones_do() {
        // The packages' generated functions stay in their manifests until a script calls one;
        // this calls every function both ways and compares what comes back, value or error.
        let lazy = packages();
        let mut registered = lazy.clone();
        registered.register_lazy_functions();
        let engine = |module: &Module| {
            let mut engine = Engine::new_raw();
            engine.register_global_module(module.clone().into());
            engine
        };
        let (lazy_engine, registered_engine) = (engine(&lazy), engine(&registered));
        let (mut compared, mut returned) = (0, 0);
        for signature in signatures(&registered) {
            let Some(call) = call_for(&signature) else {
                continue;
            };
            let got = |engine: &Engine| format!("{:?}", engine.eval::<Dynamic>(&call));
            let expected = got(&registered_engine);
            assert_eq!(got(&lazy_engine), expected, "{signature}: {call}");
            compared += 1;
            returned += usize::from(expected.starts_with("Ok("));
        }
        // Most signatures are called, and most calls reach their function and return.
        assert!(compared > 280, "{compared}");
        assert!(returned > 200, "{returned} of {compared}");
    }

    #[test]
    fn sandbox_refuses_eval_and_import() {
        let engine = engine();
        assert!(engine.compile("eval(\"1\")").is_err());
        assert!(engine.compile("import \"x\" as y;").is_err());
    }

    #[test]
    fn strict_map_properties() {
        let engine = engine();
        // A typo on a map the script made is its fault; `?.` and `??` read it as ().
        let err = engine
            .eval::<Dynamic>("let m = #{status: 1}; m.stauts")
            .unwrap_err();
        assert!(
            matches!(*err, rhai::EvalAltResult::ErrorDotExpr(ref m, _) if m.contains("did you mean 'status'")),
            "{err}"
        );
        let got = engine
            .eval::<Dynamic>("let m = #{status: 1}; [m?.stauts, m.stauts ?? 2, m[\"x\"] ?? 3]")
            .unwrap();
        assert_eq!(got.to_string(), "[(), 2, 3]");
    }

    #[test]
    fn host_sleep_overrides_the_blocking_one() {
        let host = Host::new(
            Deadline::start(Duration::from_millis(50)),
            Trace::default(),
            "test".into(),
            rhai::Map::new(),
        );
        let engine = build(&host);
        let started = std::time::Instant::now();
        let err = engine.eval::<Dynamic>("sleep(30)").unwrap_err();
        assert!(
            matches!(*err, rhai::EvalAltResult::ErrorTerminated(..)),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

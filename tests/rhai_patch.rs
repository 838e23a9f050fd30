//! The patched Rhai (vendor/rhai), its two changes.
//!
//! 1. A module's functions held in plugin manifests (not registered up front) are found through
//!    a table sorted by hash, built on the first lookup, instead of hashing every function in
//!    every manifest on each lookup. These pin what a lookup must find: the function with the
//!    highest precedence among manifests (later manifests, then flattened sub-modules, then later
//!    functions), a registered function before any manifest's, overloads by parameter type, and
//!    nothing for a function that is not there. The engine's own packages are checked function
//!    by function in src/engine.rs (`lazy_packages_call_what_registered_ones_do`).
//! 2. Optional reads under `fail_on_invalid_map_property`: `?.`/`?[` and the left of `??` read a
//!    missing key (or an index past the end) as `()`, and the callbacks for a missing key or
//!    index see the tag of the value they are read from, and are not called for assignments.

use rhai::plugin::*;
use rhai::{packages::Package, Engine, Module};

#[export_module(manifest)]
mod first {
    pub fn pick(_x: i64) -> String {
        "first".into()
    }
    pub fn only_first() -> i64 {
        1
    }
    pub fn typed(_x: i64) -> String {
        "int".into()
    }
    #[rhai_fn(name = "typed")]
    pub fn typed_str(_x: &str) -> String {
        "string".into()
    }
    #[rhai_fn(name = "typed")]
    pub fn typed_two(_x: i64, _y: i64) -> String {
        "two".into()
    }
}

#[export_module(manifest)]
mod second {
    pub fn pick(_x: i64) -> String {
        "second".into()
    }
    pub fn only_second() -> i64 {
        2
    }

    pub mod inner {
        pub fn pick(_x: i64) -> String {
            "second::inner".into()
        }
    }
}

/// A module holding these manifests' functions unregistered, the later ones taking precedence.
fn combined(manifests: &[&'static ModuleManifest]) -> Module {
    let mut module = Module::new();
    for manifest in manifests {
        module.combine_manifest(manifest);
    }
    module
}

fn engine_with(module: Module) -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(module.into());
    engine
}

fn eval(engine: &Engine, script: &str) -> String {
    engine
        .eval::<rhai::Dynamic>(script)
        .map(|v| v.to_string())
        .unwrap_or_else(|e| format!("error: {e}"))
}

#[test]
fn the_later_manifest_wins_and_both_are_reachable() {
    let engine = engine_with(combined(&[exported_manifest!(first)]));
    assert_eq!(eval(&engine, "pick(0)"), "first");

    let engine = engine_with(combined(&[
        exported_manifest!(first),
        exported_manifest!(second),
    ]));
    // `second` came later, and its flattened sub-module takes precedence over its own functions,
    // as when every function is registered in turn.
    assert_eq!(eval(&engine, "pick(0)"), "second::inner");
    assert_eq!(eval(&engine, "only_first() + only_second()"), "3");

    let module = combined(&[exported_manifest!(second), exported_manifest!(first)]);
    assert_eq!(eval(&engine_with(module), "pick(0)"), "first");
}

#[test]
fn lookups_agree_with_registering_every_function() {
    let scripts = [
        "pick(0)",
        "only_first()",
        "only_second()",
        "typed(1)",
        "typed(\"a\")",
        "typed(1, 2)",
        "typed(1.5)",
        "typed()",
        "nothing(1)",
    ];
    for order in [[0, 1], [1, 0]] {
        let manifests = [exported_manifest!(first), exported_manifest!(second)];
        let lazy = combined(&order.map(|i| manifests[i]));
        let mut registered = lazy.clone();
        registered.register_lazy_functions();
        let (lazy, registered) = (engine_with(lazy), engine_with(registered));
        for script in scripts {
            assert_eq!(
                eval(&lazy, script),
                eval(&registered, script),
                "{script} with manifests in order {order:?}"
            );
        }
    }
}

#[test]
fn overloads_are_found_by_parameter_type_and_missing_ones_are_not() {
    let engine = engine_with(combined(&[exported_manifest!(first)]));
    assert_eq!(eval(&engine, "typed(1)"), "int");
    assert_eq!(eval(&engine, "typed(\"a\")"), "string");
    assert_eq!(eval(&engine, "typed(1, 2)"), "two");
    for missing in ["typed(1.5)", "typed()", "nothing(1)"] {
        let got = eval(&engine, missing);
        assert!(
            got.starts_with("error: Function not found"),
            "{missing}: {got}"
        );
    }
}

#[test]
fn a_registered_function_wins_over_the_manifests() {
    let mut module = Module::new();
    module.combine_manifest(exported_manifest!(first));
    module.set_native_fn("pick", |_x: i64| Ok("registered".to_string()));
    module.combine_manifest(exported_manifest!(second));
    let engine = engine_with(module);
    assert_eq!(eval(&engine, "pick(0)"), "registered");
    assert_eq!(eval(&engine, "only_second()"), "2");
}

#[test]
fn a_manifest_added_after_the_first_lookup_is_found() {
    // The sorted table is built on the first lookup; adding a manifest must not leave it stale.
    let mut module = combined(&[exported_manifest!(first)]);
    // A lookup on this very module (a miss) builds its table.
    assert!(!module.contains_fn(0));
    let before = module.clone();
    assert_eq!(eval(&engine_with(before), "pick(0)"), "first");
    module.combine_manifest(exported_manifest!(second));
    let engine = engine_with(module);
    assert_eq!(eval(&engine, "pick(0)"), "second::inner");
    assert_eq!(eval(&engine, "only_second()"), "2");
}

// ---- optional reads and the missing-key callbacks --------------------------------------------

fn strict() -> Engine {
    let mut engine = Engine::new_raw();
    engine.register_global_module(rhai::packages::StandardPackage::new().as_shared_module());
    engine.set_fail_on_invalid_map_property(true);
    engine
}

#[test]
fn optional_reads_give_unit_for_a_missing_key_or_index() {
    let engine = strict();
    let h = "let h = #{a: #{b: 1}, c: [1, 2], n: ()};";
    for (expr, want) in [
        ("h.x ?? 5", "5"),
        ("h.a.x ?? 5", "5"),
        ("h.x.y.z ?? 5", "5"),
        ("h.a.b ?? 5", "1"),
        ("h[\"x\"] ?? 7", "7"),
        ("h.c[5] ?? 8", "8"),
        ("h.c[1] ?? 8", "2"),
        ("h.c[-9] ?? 8", "8"),
        ("h.n ?? 4", "4"),
        ("h.x ?? h.y ?? 3", "3"),
        ("(h.x ?? h.y) ?? 3", "3"),
        ("type_of(h?.x)", "()"),
        ("type_of(h.a?.x)", "()"),
        ("type_of(h.c?[9])", "()"),
        ("h.x.len() ?? 0", "0"),
    ] {
        assert_eq!(eval(&engine, &format!("{h} {expr}")), want, "{expr}");
    }
    // Strict reads still fail, and so do the parts `??` does not make optional: an index
    // expression, and what follows a single `?.`.
    for expr in [
        "h.x",
        "h[\"x\"]",
        "h.c[5]",
        "h?.a.x",
        "let k = #{}; h[k.q] ?? 2",
    ] {
        assert!(
            eval(&engine, &format!("{h} {expr}")).starts_with("error:"),
            "{expr} did not fail"
        );
    }
    // Assignments are untouched.
    assert_eq!(eval(&engine, "let m = #{}; m.a = 4; m.a ?? 0"), "4");
}

#[test]
fn the_callbacks_see_the_tag_and_only_reads() {
    use std::sync::{Arc, Mutex};
    let mut engine = strict();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    engine.on_map_missing_property(move |_, key, tag, _| {
        log.lock().unwrap().push(format!("{key}@{tag}"));
        Err(
            rhai::EvalAltResult::ErrorRuntime(format!("no {key}").into(), rhai::Position::NONE)
                .into(),
        )
    });
    let log = seen.clone();
    engine.on_invalid_array_index(move |_, index, tag, _| {
        log.lock().unwrap().push(format!("[{index}]@{tag}"));
        Err(rhai::EvalAltResult::ErrorRuntime("no item".into(), rhai::Position::NONE).into())
    });
    let mut tagged = rhai::Map::new();
    tagged.insert("a".into(), 1_i64.into());
    let mut value = rhai::Dynamic::from_map(tagged);
    value.set_tag(42);
    let mut array = rhai::Dynamic::from_array(vec![1_i64.into()]);
    array.set_tag(-7);
    let mut scope = rhai::Scope::new();
    scope.push("t", value);
    scope.push("v", array);
    let run = |scope: &mut rhai::Scope, script: &str| {
        engine
            .eval_with_scope::<rhai::Dynamic>(scope, script)
            .map_or_else(|e| format!("error: {e}"), |v| v.to_string())
    };
    for (script, want) in [
        ("t.zz", "no zz"),
        ("v[3]", "no item"),
        ("let plain = #{}; plain.q", "no q"),
    ] {
        let got = run(&mut scope, script);
        assert!(
            got.starts_with("error: ") && got.contains(want),
            "{script}: {got}"
        );
    }
    // Optional reads and assignments never reach the callback.
    assert_eq!(run(&mut scope, "t?.zz ?? t.yy ?? 1"), "1");
    assert_eq!(run(&mut scope, "t.added = 2; t.added"), "2");
    assert_eq!(*seen.lock().unwrap(), ["zz@42", "[3]@-7", "q@0"]);
}

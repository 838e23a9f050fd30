//! `rhai-probe defs`: the host functions as a Rhai definition file (`.d.rhai`, the format
//! `Engine::definitions()` writes and the Rhai language servers read), so an editor completes
//! and checks `http_get(url, #{timeout: "1s"})` as it does Rhai's own functions. Generated from
//! the declarations, as `functions` is.

use std::fmt::Write as _;

use crate::host::{self, decl::Signature};

/// The file name an editor's workspace gets.
pub const FILE: &str = "rhai-probe.d.rhai";

/// The definitions of every host function, one `fn` per signature, each with its doc lines.
pub fn definitions() -> String {
    let mut out = String::from(
        "module static;\n\n// The functions rhai-probe offers a probe script; written by `rhai-probe defs`.\n",
    );
    for f in host::functions() {
        for text in f.signatures {
            let Some(signature) = Signature::parse(text) else {
                continue;
            };
            out.push('\n');
            let _ = writeln!(out, "/// {}", f.summary);
            if !f.options.is_empty() && signature.params.iter().any(|p| p.name == "options") {
                let _ = writeln!(out, "///");
                let _ = writeln!(out, "/// Options: {}.", f.option_keys().join(", "));
            }
            if !f.keys.is_empty() {
                let keys: Vec<String> = f
                    .keys
                    .iter()
                    .map(|k| format!("{} ({})", k.name, k.ty.word()))
                    .collect();
                let _ = writeln!(out, "///");
                let _ = writeln!(out, "/// Keys: {}.", keys.join(", "));
            }
            let _ = writeln!(out, "///");
            let _ = writeln!(out, "/// When it fails: {}.", f.fails.describe());
            let params: Vec<String> = signature
                .params
                .iter()
                .map(|p| format!("{}: {}", p.name, p.ty.rhai()))
                .collect();
            let _ = writeln!(
                out,
                "fn {}({}) -> {};",
                f.name,
                params.join(", "),
                signature.returns.rhai()
            );
        }
    }
    out
}

//! Puts the commit the binary was built from into `--version`: `rhai-probe 0.1.0 (3f2a9c1e0b7d)`.
//! `RHAI_PROBE_COMMIT` overrides it (a container build without `.git` passes it as a build arg);
//! outside a git checkout it reads `unknown`.

use std::{path::PathBuf, process::Command};

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=RHAI_PROBE_COMMIT");
    let commit = std::env::var("RHAI_PROBE_COMMIT")
        .ok()
        .filter(|c| !c.is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".into());
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it points at (a commit).
    if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(branch).display());
        }
        // Only when it exists: cargo counts a missing file as changed, and would rebuild the
        // crate on every build.
        let packed = dir.join("packed-refs");
        if packed.exists() {
            println!("cargo:rerun-if-changed={}", packed.display());
        }
    }
    println!("cargo:rustc-env=RHAI_PROBE_COMMIT={commit}");
    // scripts/build-static.sh links with this function order; cargo does not know the linker
    // reads it, so a new order must relink the binary through here.
    println!("cargo:rerun-if-changed=scripts/link-order.txt");
}

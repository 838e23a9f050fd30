//! Hot reload: once a second, look at every probe's script file and, with `--dir`, at the
//! directory's list of `*.rhai` files.
//!
//! A file is identified by what its path resolves to now (device, inode, size, modification
//! time), following symlinks. Kubernetes updates a mounted ConfigMap by writing a new
//! timestamped directory and swapping the `..data` symlink to it, so the file's own bytes never
//! change in place: the path simply resolves to another inode, which this sees. Polling one
//! `stat` per probe per second costs nothing measurable and needs no inotify dependency (which
//! would also miss a swap of a symlink higher up the path).

use std::{
    collections::BTreeMap,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use crate::{cli::serve::ProbeSpec, logging::SERVE, probe};

use super::{worker::Job, App};

/// How often files are looked at.
pub const POLL: Duration = Duration::from_secs(1);

/// What a path resolves to: a change in any of these means the script may have changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
}

/// The file's stamp, `None` when it cannot be read.
pub fn stamp(path: &Path) -> Option<Stamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(Stamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.mtime(),
        mtime_nsec: m.mtime_nsec(),
    })
}

/// The probes a directory holds: every `NAME.rhai` regular file (or symlink to one) whose name is
/// a valid probe name. Kubernetes' own `..data` and `..2026_…` entries start with dots and are
/// skipped.
pub fn scan(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "rhai") || !path.is_file() {
            continue;
        }
        if let Some(name) = ProbeSpec::name_of(&path) {
            found.insert(name, path);
        }
    }
    Ok(found)
}

/// The watcher's loop; it runs until the process ends.
pub fn watch(app: Arc<App>, dir: Option<PathBuf>, mut stamps: BTreeMap<String, Option<Stamp>>) {
    loop {
        std::thread::sleep(POLL);
        if let Some(dir) = &dir {
            rescan(&app, dir, &mut stamps);
        }
        for probe in app.probes() {
            let now = stamp(&probe.path);
            let before = stamps.get(&probe.name).copied().flatten();
            if now == before {
                continue;
            }
            stamps.insert(probe.name.clone(), now);
            // Read after taking the stamp: a write in between shows up at the next poll.
            let script = probe::load(&probe.path);
            if probe.send(Job::Reload(script)) {
                log::debug!(target: SERVE, "probe {}: {} changed", probe.name, crate::redact::path(&probe.path));
            }
        }
    }
}

/// Add the probes that appeared in `dir`, remove those that left it.
fn rescan(app: &App, dir: &Path, stamps: &mut BTreeMap<String, Option<Stamp>>) {
    let found = match scan(dir) {
        Ok(found) => found,
        Err(e) => {
            log::warn!(
                target: SERVE,
                "cannot list {}: {}; keeping the probes as they are",
                crate::redact::path(dir),
                crate::host::io_reason(&e)
            );
            return;
        }
    };
    for name in app.dir_probes() {
        if !found.contains_key(&name) {
            log::warn!(target: SERVE, "probe {name}: its file left {}; removed", crate::redact::path(dir));
            app.remove(&name);
            stamps.remove(&name);
        }
    }
    for (name, path) in found {
        if app.has(&name) {
            continue;
        }
        stamps.insert(name.clone(), stamp(&path));
        match app.add(
            ProbeSpec {
                name: name.clone(),
                path,
            },
            true,
        ) {
            Ok(()) => log::info!(target: SERVE, "probe {name}: added"),
            Err(e) => log::error!(target: SERVE, "probe {name}: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_swap_changes_the_stamp() {
        let dir = std::env::temp_dir().join(format!("rhai-probe-stamp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        for gen in ["..1", "..2"] {
            std::fs::create_dir_all(dir.join(gen)).unwrap();
            std::fs::write(dir.join(gen).join("live.rhai"), "true").unwrap();
        }
        std::os::unix::fs::symlink("..1", dir.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/live.rhai", dir.join("live.rhai")).unwrap();
        let before = stamp(&dir.join("live.rhai")).unwrap();
        std::os::unix::fs::symlink("..2", dir.join("..data_tmp")).unwrap();
        std::fs::rename(dir.join("..data_tmp"), dir.join("..data")).unwrap();
        let after = stamp(&dir.join("live.rhai")).unwrap();
        assert_ne!(before, after);
        let found = scan(&dir).unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["live"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! The modules behind the `rhai-probe` binary.
//!
//! They are a library only so that fuzz targets (`fuzz/`) and benchmarks can reach the parsers
//! the project owns; the command line in `main.rs` is the product's one interface, and nothing
//! here is a stable API.

pub mod alloc;
pub mod cli;
pub mod deadline;
pub mod defs;
pub mod diagnostic;
pub mod engine;
pub mod exit_code;
pub mod host;
pub mod lint;
pub mod logging;
pub mod permissions;
pub mod probe;
pub mod redact;
pub mod report;
pub mod serve;
pub mod signals;
pub mod state;
pub mod target;
pub mod testing;
pub mod trace;
pub mod wait;

//! The integration tests: one binary, one harness, the real `sigma-galaxy` executable run in temporary
//! folders against git repositories the tests build themselves.

#![allow(clippy::unwrap_used, clippy::needless_range_loop)]

mod build;
mod check;
mod coverage;
mod harness;
mod hostile;
mod identity;
mod incremental;
mod merge;
mod release;
mod remote;
mod workflow;

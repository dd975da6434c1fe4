//! Commands: one module per sub-command, each a thin driver over the pipeline stages.
//!
//! A command turns its clap arguments into what the stages need (through [`crate::config`]), runs
//! them and prints its result. Pipeline stages never import commands; commands never import each
//! other.

pub mod build;
pub mod check;
pub mod completions;
pub mod coverage;
pub mod diff;
pub mod init;
pub mod install;
pub mod man;
pub mod release;
pub mod validate;

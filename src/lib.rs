//! sigma-galaxy: build MISP galaxies from Sigma rule repositories.
//!
//! The pipeline is the architecture; each stage is one module and data flows one way:
//!
//! ```text
//! config → sources → diff → parse → state → merge → relate → emit → report
//! ```
//!
//! [`run`] is the whole program behind `main`: it takes the parsed command line and returns an exit code.

pub mod emit;
pub mod parse;
pub mod sources;
pub mod validate;

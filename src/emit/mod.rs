//! Emit: writes the MISP cluster and galaxy files.

pub mod json;

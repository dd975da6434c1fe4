//! Sources: where rules come from.

pub mod weburl;

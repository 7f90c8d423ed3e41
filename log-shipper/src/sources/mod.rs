//! Log sources other than files.

pub mod journal;

//! The `podstart` command line: reading the files it is given.
pub mod manifest;
pub mod quantity;

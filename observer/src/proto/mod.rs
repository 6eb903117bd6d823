//! Application-protocol parsers: pure functions over byte slices, each with its own tests.
//! They never allocate on the parse path and never panic on any input.

pub mod dns;
pub mod http1;
pub mod tls;

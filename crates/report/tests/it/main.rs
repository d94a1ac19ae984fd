//! Report tests on real logs, malformed input and the output formats.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod common;
mod funnel;
mod malformed;
mod outputs;
mod real_logs;
mod robustness;

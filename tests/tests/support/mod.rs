//! Test harness: the shared harness of the `yilian-tests` library (also used by the benchmark
//! runner), plus the Python test peers only the tests use.

#![allow(dead_code, unused_imports)]

pub mod python_peer;

pub use yilian_tests::harness::*;

//! Black-box tests live in tests/*.rs; this crate only gives them a home.

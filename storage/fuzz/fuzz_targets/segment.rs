//! `storage::fuzz::segment` under libFuzzer; see `storage/src/fuzz.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| storage::fuzz::segment(data));

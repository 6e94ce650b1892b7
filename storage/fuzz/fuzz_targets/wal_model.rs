//! `storage::fuzz::wal_model` under libFuzzer; see `storage/src/fuzz.rs`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| storage::fuzz::wal_model(data));

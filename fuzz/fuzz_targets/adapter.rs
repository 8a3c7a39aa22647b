#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| floodrt::fuzz::adapter(data));

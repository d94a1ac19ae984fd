//! Arbitrary bytes never panic the milter decoder, and it never claims more bytes than it got.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfleet_policy_proto::milter::decode;

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    while let Ok(Some((_, used))) = decode(rest) {
        assert!(used > 4 && used <= rest.len());
        rest = &rest[used..];
    }
});

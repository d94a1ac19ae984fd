//! Arbitrary bytes as log lines never panic the report's line parser, and the chunk parser
//! (which reuses a repeated line header) classifies every line exactly as a fresh parse does.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfleet_report::{Hosts, LineParser, classify_line};

fuzz_target!(|data: &[u8]| {
    let mut cached = LineParser::new(None);
    let mut fresh = Hosts::default();
    for line in data.split(|&b| b == b'\n') {
        let (a, b) = (cached.classify(line), classify_line(line, &mut fresh));
        assert_eq!((a.stamp, &a.kind, a.host), (b.stamp, &b.kind, b.host));
    }
    assert_eq!(cached.into_names(), fresh.into_names());
});

//! Arbitrary bytes, split into lines as the server splits them, never panic the policy parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mailfleet_policy_proto::policy::{Action, RequestBuilder};

fuzz_target!(|data: &[u8]| {
    let mut builder = RequestBuilder::default();
    for line in data.split(|&b| b == b'\n') {
        match builder.line(line) {
            Ok(Some(request)) => {
                let _ = request.state();
                let _ = request.number("size");
                let reply = Action::Hold(request.get("sender").unwrap_or("").to_string()).encode();
                assert!(reply.ends_with("\n\n") && reply.matches('\n').count() == 2);
            }
            Ok(None) => {}
            // The server closes the connection on an error; start over as a new one would.
            Err(_) => builder = RequestBuilder::default(),
        }
    }
});

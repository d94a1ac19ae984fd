//! The DNSBL stage against real zones served by rbldnsd: weights add up to the threshold,
//! hits are counted per list (and per distinct client) in `policy status`.

use std::time::{Duration, Instant};

use mailfleet_policy::client::PolicyClient;
use serde_json::Value;

/// One RCPT request from `client`; the reply line.
async fn rcpt_from(port: u16, client: &str) -> String {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut c = PolicyClient::connect(addr, Duration::from_secs(10))
        .await
        .unwrap();
    let action = c
        .ask(&[
            ("request", "smtpd_access_policy"),
            ("protocol_state", "RCPT"),
            ("client_address", client),
            ("sender", "someone@example.net"),
            ("recipient", "bob@example.com"),
        ])
        .await
        .expect("answered");
    action.encode().trim_end().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn listed_clients_are_refused_by_weight_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let ports = mailfleet_stack::ports::free_ports("127.0.0.1", 2);
    let _dns = mailfleet_stack::rbldnsd::start(
        &dir.path().join("rbl"),
        ports[0],
        &[
            ("bl.test", &["127.0.0.2", "192.0.2.0/24"]),
            ("weak.test", &["127.0.0.2", "192.0.2.10", "198.51.100.5"]),
        ],
    )
    .unwrap();
    let config = dir.path().join("mailfleet.toml");
    std::fs::write(
        &config,
        format!(
            "data_dir = \"data\"\n[policy]\nlisten = \"127.0.0.1:{}\"\nblock_refresh_secs = 1\n\
             dns_server = \"127.0.0.1:{}\"\ndnsbl_threshold = 2\n\
             [[policy.dnsbl]]\nzone = \"bl.test\"\nweight = 2\n\
             [[policy.dnsbl]]\nzone = \"weak.test\"\nweight = 1\n",
            ports[1], ports[0]
        ),
    )
    .unwrap();
    let _server = crate::common::policy_serve(&config, ports[1], &dir.path().join("serve.log"));

    // Both lists (2 + 1): refused, naming them.
    let r = rcpt_from(ports[1], "192.0.2.10").await;
    assert!(r.starts_with("action=REJECT 5.7.1"), "{r}");
    assert!(r.contains("bl.test") && r.contains("weak.test"), "{r}");
    // Only the weak list (1 < 2): passes.
    assert_eq!(rcpt_from(ports[1], "198.51.100.5").await, "action=DUNNO");
    // Listed nowhere.
    assert_eq!(rcpt_from(ports[1], "203.0.113.1").await, "action=DUNNO");
    // The heavy list alone reaches the threshold.
    assert!(
        rcpt_from(ports[1], "192.0.2.20")
            .await
            .starts_with("action=REJECT")
    );
    // The same client again: counted again, not as a new one.
    assert!(
        rcpt_from(ports[1], "192.0.2.10")
            .await
            .starts_with("action=REJECT")
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let hits = loop {
        let out = crate::common::mailfleet_ok(&config, &["--json", "policy", "status"]);
        let v: Value = serde_json::from_str(&out).unwrap();
        let d = v["dnsbl"].clone();
        if d.as_array()
            .is_some_and(|a| a.len() == 2 && a[0]["hits"] == 3)
        {
            break d;
        }
        assert!(
            Instant::now() < deadline,
            "no DNSBL counts in the status: {v:#}"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(hits[0]["zone"], "bl.test");
    assert_eq!(
        (hits[0]["hits"].as_u64(), hits[0]["unique"].as_u64()),
        (Some(3), Some(2))
    );
    assert_eq!(hits[1]["zone"], "weak.test");
    assert_eq!(
        (hits[1]["hits"].as_u64(), hits[1]["unique"].as_u64()),
        (Some(3), Some(2))
    );
}

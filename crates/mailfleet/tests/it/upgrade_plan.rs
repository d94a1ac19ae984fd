//! `mailfleet upgrade plan` on the demo fleet: the directory master, its replica, the MTAs one
//! after the other, the proxy, then the stores; each store's gate reads its real backup status
//! (none yet, then the backup just run); `--servers` narrows it, an unknown server is a usage
//! error. `upgrade holds`: the managed packages as unattended-upgrades' anchored regexes, and
//! reboot times with the directory first, an hour apart, and the two stores (a group) apart.

use crate::common::{mailfleet, mailfleet_json, mailfleet_ok};

#[tokio::test]
async fn the_demo_fleet_is_planned_in_role_order_with_its_backups() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let path = stack.config_path();
    let c = path.to_str().unwrap();
    let plan = mailfleet_json(c, &["upgrade", "plan"]);
    let order: Vec<&str> = plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"].as_str().unwrap())
        .collect();
    assert_eq!(
        order,
        ["ldap1", "ldap2", "mx1", "mx2", "proxy1", "store1", "store2"],
        "{plan:#}"
    );
    let gates = |p: &serde_json::Value, n: usize| p["steps"][n]["before"].to_string();
    assert!(
        gates(&plan, 5).contains("none has succeeded yet"),
        "{}",
        gates(&plan, 5)
    );
    assert!(
        gates(&plan, 3).contains("group mta: mx1 OK"),
        "{}",
        gates(&plan, 3)
    );
    // ldap2 starts an hour after ldap1's end (the default directory spacing).
    let start = |n: usize| {
        chrono::DateTime::parse_from_rfc3339(plan["steps"][n]["start"].as_str().unwrap()).unwrap()
    };
    assert!(start(1) - start(0) >= chrono::Duration::hours(1));

    mailfleet_ok(&path, &["backup", "run"]);
    let plan = mailfleet_json(c, &["upgrade", "plan", "--servers", "store2,mx1"]);
    assert_eq!(plan["steps"].as_array().unwrap().len(), 2, "{plan:#}");
    assert_eq!(plan["steps"][1]["server"], "store2");
    assert!(
        gates(&plan, 1).contains("a good backup newer than 24 h"),
        "{}",
        gates(&plan, 1)
    );

    let human = mailfleet_ok(&path, &["upgrade", "plan"]);
    assert!(human.starts_with("upgrade plan: 7 servers"), "{human}");
    assert!(human.contains("why: the directory master first"), "{human}");
    let out = mailfleet(&["--config", c, "upgrade", "plan", "--servers", "nosuch"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("nosuch: no such server"));

    let holds = mailfleet_json(c, &["upgrade", "holds", "--format", "apt"]);
    let snippet = holds["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("\"^slapd$\";") && snippet.contains("\"^zimbra-.*$\";"),
        "{snippet}"
    );
    let slot = |n: &str| {
        holds["reboots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["server"] == n)
            .map(|r| r["slot"].as_u64().unwrap())
            .unwrap()
    };
    // 15-minute slots: ldap2 an hour after ldap1, both before any other server.
    assert_eq!(slot("ldap2") - slot("ldap1"), 4);
    assert!(slot("mx1") > slot("ldap2") && slot("proxy1") > slot("ldap2"));
    assert_ne!(slot("mx1"), slot("mx2"));
    assert_ne!(slot("store1"), slot("store2"));
    assert!(slot("store1").min(slot("store2")) > slot("mx1").max(slot("mx2")));
    let human = mailfleet_ok(&path, &["upgrade", "holds"]);
    assert!(
        human.contains("// ldap1: Unattended-Upgrade::Automatic-Reboot-Time \"02:00\";"),
        "{human}"
    );
}

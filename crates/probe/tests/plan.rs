//! Which checks a fleet gets from its servers' roles and ports: greetings per port (AUTH where
//! a probe account is set), logins on stores, LDAP and the replica's lag, the MTA's queue and
//! one end-to-end route per store, the backup's freshness; `local` for this machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use mailfleet_probe::Plan;
use mailfleet_probe::plan::PlanError;

const FLEET: &str = r#"
data_dir = "data"
[[server]]
name = "ldap1"
roles = ["directory"]
host = "127.0.0.1"
ports = { ldap = 389 }
[[server]]
name = "ldap2"
roles = ["directory"]
host = "127.0.0.2"
ports = { ldap = 389, ldaps = 636 }
replica_of = "ldap1"
[[server]]
name = "mx1"
roles = ["mta"]
host = "127.0.0.3"
ports = { smtp = 25, submission = 587 }
postfix_dir = "/etc/postfix"
probe_account = "probe@example.com"
[[server]]
name = "store1"
roles = ["mailbox"]
host = "127.0.0.4"
ports = { imap = 143, imaps = 993, pop3 = 110, lmtp = 24 }
maildir_root = "/srv/mail"
probe_account = "probe@example.com"
backup_status = "/srv/status.json"
[[server]]
name = "store2"
roles = ["mailbox"]
host = "127.0.0.5"
ports = { imap = 143, lmtp = 24 }
maildir_root = "/srv/mail"
[[server]]
name = "web"
roles = ["proxy"]
host = "127.0.0.6"
ports = { https = 443 }
"#;

fn config() -> mailfleet_core::Config {
    let dir = tempfile::tempdir().unwrap();
    mailfleet_core::Config::parse(FLEET, &dir.path().join("mailfleet.toml")).unwrap()
}

fn names(plan: &Plan) -> Vec<String> {
    plan.checks()
        .0
        .into_iter()
        .map(|(s, c)| format!("{s} {c}"))
        .collect()
}

#[test]
fn every_port_and_role_gets_its_check() {
    let c = config();
    let plan = Plan::new(&c, &[]).unwrap();
    assert_eq!(
        names(&plan),
        [
            "ldap1 ldap",
            "ldap2 ldap",
            "ldap2 ldaps",
            "ldap2 replica",
            "mx1 smtp",
            "mx1 submission",
            "mx1 queue",
            // One end-to-end route per store with a probe account: store2 has none.
            "mx1 e2e:store1",
            "store1 lmtp",
            "store1 imap",
            "store1 imaps",
            "store1 pop3",
            "store1 backup",
            "store1 locked",
            "store2 lmtp",
            "store2 imap",
            "store2 locked",
            "web https",
        ]
    );
    assert!(plan.checks().1, "all servers: this machine's resources too");
    assert_eq!(plan.len(), 18);
}

#[test]
fn named_servers_and_local_narrow_the_round() {
    let c = config();
    let only = Plan::new(&c, &["store2".into()]).unwrap();
    assert_eq!(
        names(&only),
        ["store2 lmtp", "store2 imap", "store2 locked"]
    );
    assert!(
        !only.checks().1,
        "a named server alone: no resources of this machine"
    );
    let local = Plan::new(&c, &["local".into()]).unwrap();
    assert!(names(&local).is_empty() && local.checks().1 && !local.is_empty());
    assert!(matches!(
        Plan::new(&c, &["store9".into()]),
        Err(PlanError::UnknownServer(n)) if n == "store9"
    ));
}

#[test]
fn a_repeated_plan_names_each_copy() {
    let c = config();
    let plan = Plan::new(&c, &["store2".into()]).unwrap().repeated(3);
    assert_eq!(
        names(&plan),
        [
            "store2#1 lmtp",
            "store2#1 imap",
            "store2#1 locked",
            "store2#2 lmtp",
            "store2#2 imap",
            "store2#2 locked",
            "store2#3 lmtp",
            "store2#3 imap",
            "store2#3 locked",
            // A load test reads every copy's resources, a local server's by the same
            // script run here, as a fleet of that size would.
            "store2#1 resources",
            "store2#2 resources",
            "store2#3 resources"
        ]
    );
    let once = Plan::new(&c, &["store2".into()]).unwrap().repeated(1);
    assert_eq!(
        names(&once),
        ["store2 lmtp", "store2 imap", "store2 locked"]
    );
}

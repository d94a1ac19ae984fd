//! The demo fleet reached as a fleet of hosts: each server's own sshd on its own loopback
//! address runs its tools. `exec` goes through each one; routing is published through each
//! server's access, one unreachable server is named while the others are still published to;
//! and the same fleet with `access = "local"` routes the same.

use std::time::Duration;

use mailfleet_stack::TestStack;

use crate::common::{mailfleet, mailfleet_ok, send, unique_tag, wait_for_mail};

#[tokio::test]
async fn exec_runs_through_each_servers_own_sshd_and_exits_with_the_worst_code() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    let c = config.to_str().unwrap();
    // SSH_CONNECTION names the address the server's sshd answered on.
    let out = mailfleet_ok(
        &config,
        &[
            "exec",
            "--role",
            "mailbox",
            "--",
            "sh",
            "-c",
            "echo $SSH_CONNECTION",
        ],
    );
    let ssh = stack.info.ports.ssh;
    for (server, addr) in [("store1", "127.0.0.31"), ("store2", "127.0.0.32")] {
        let line = out
            .lines()
            .find(|l| l.starts_with(&format!("{server}:")))
            .unwrap_or_else(|| panic!("no line of {server}: {out}"));
        assert!(line.ends_with(&format!("{addr} {ssh}")), "{line}");
    }
    // The worst exit code of the servers, each server's code in the JSON.
    let out = mailfleet(&[
        "--config",
        c,
        "--json",
        "exec",
        "mx1",
        "ldap1",
        "--",
        "sh",
        "-c",
        "case \"$SSH_CONNECTION\" in *\" 127.0.0.21 \"*) exit 3;; esac",
    ]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let codes: Vec<(String, i64)> = v["runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["server"].as_str().unwrap().to_string(),
                r["code"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(codes, [("ldap1".to_string(), 0), ("mx1".to_string(), 3)]);
    // An unknown server is a usage error, nothing run.
    let out = mailfleet(&["--config", c, "exec", "mx9", "--", "true"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown server \"mx9\""));
}

#[tokio::test]
async fn routing_goes_through_each_access_and_an_unreachable_mta_is_named() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    let layout = mailfleet_stack::Layout::new(&stack.base());
    let mx1_sshd = layout.sshd("mx1", "", 0);
    mx1_sshd.stop().unwrap();
    let out = mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "accounts",
        "set-server",
        "carol@example.org",
        "store1",
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("mx1: cannot connect to root@127.0.0.21"),
        "{err}"
    );
    // The stores were published to all the same: carol's password is now store1's to check.
    let users = std::fs::read_to_string(layout.passwd_file("store1")).unwrap();
    assert!(users.contains("carol@example.org:"), "{users}");
    let out = mailfleet(&[
        "--config",
        config.to_str().unwrap(),
        "exec",
        "mx1",
        "store1",
        "--",
        "true",
    ]);
    assert_eq!(out.status.code(), Some(255));
}

#[tokio::test]
async fn the_same_fleet_with_local_access_routes_the_same() {
    let stack = TestStack::start().await.expect("stack");
    let text = std::fs::read_to_string(stack.config_path()).unwrap();
    let local: String = text
        .lines()
        .filter(|l| !l.starts_with("ssh = "))
        .map(|l| format!("{l}\n"))
        .collect();
    let config = stack.base().join("local.toml");
    std::fs::write(&config, local).unwrap();
    let shown = mailfleet_ok(&config, &["config", "check"]);
    assert!(
        shown.contains("store1") && !shown.contains("ssh root@"),
        "{shown}"
    );
    let ssh = mailfleet_ok(&stack.config_path(), &["config", "check"]);
    assert!(ssh.contains("ssh root@127.0.0.31:"), "{ssh}");
    mailfleet_ok(
        &config,
        &["accounts", "set-server", "carol@example.org", "store1"],
    );
    let tag = unique_tag("local-access");
    let p = &stack.info.ports;
    send(p.smtp, "alice@example.com", "carol@example.org", &tag).await;
    let moved = wait_for_mail(
        p.stores[0].imap,
        "carol@example.org",
        &tag,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(moved.len(), 1, "the mail did not follow carol to store1");
}

#[tokio::test]
async fn set_server_republishes_routing_on_both_mtas() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config_path();
    mailfleet_ok(
        &config,
        &["accounts", "set-server", "carol@example.org", "store1"],
    );
    let fleet = stack.config().unwrap().fleet;
    for mta in ["mx1", "mx2"] {
        let mx = fleet.server(mta).unwrap();
        let tag = unique_tag(&format!("both-{mta}"));
        crate::common::send_via(
            &mx.host,
            mx.ports.smtp.unwrap(),
            "alice@example.com",
            "carol@example.org",
            &tag,
        )
        .await;
        let moved = wait_for_mail(
            stack.info.ports.stores[0].imap,
            "carol@example.org",
            &tag,
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(
            moved.len(),
            1,
            "mail through {mta} did not follow carol to store1"
        );
    }
    // mx2 is a host of its own: its own address, its own maps.
    assert_ne!(
        fleet.server("mx2").unwrap().host,
        fleet.server("mx1").unwrap().host
    );
}

//! `upgrade holds --check` against real apt on the demo's servers (each with its own package
//! root, all reading a local repository this test builds with dpkg-deb and apt-ftparchive):
//! store1 has mf-dovecot 1.0 (held) and mf-plugin 1.0, which depends on it exactly; once 1.1 of
//! both is published, the check reports the held update and, as the danger, mf-plugin, which
//! the OS would still upgrade and which drags the held package along (exit 1). Holding the
//! plugin too clears it; the other servers have nothing installed and report nothing.

use std::process::Command;

use mailfleet_stack::apt::{Package, build, index};

use crate::common::{mailfleet, mailfleet_json};

fn publish(repo: &std::path::Path, version: &str) {
    for (name, depends) in [
        ("mf-dovecot", None),
        ("mf-plugin", Some(format!("mf-dovecot (= {version})"))),
    ] {
        let path = format!("usr/share/{name}/version");
        build(
            repo,
            &Package {
                name,
                version,
                depends: depends.as_deref(),
                files: vec![(path.as_str(), format!("{name} {version}\n"))],
                programs: vec![],
            },
        )
        .unwrap();
    }
    index(repo).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_package_depending_on_a_held_one_is_reported() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let repo = stack.base().join("apt-repo");
    publish(&repo, "1.0");
    // store1 gets 1.0 of both (the test's own setup, with the argv the product uses).
    let store1 = config.fleet.server("store1").unwrap();
    for args in [
        vec!["-q", "update"],
        vec!["-q", "-y", "install", "mf-dovecot=1.0", "mf-plugin=1.0"],
    ] {
        let argv = mailfleet_upgrade::apt::argv(store1, "apt-get", &args);
        let out = Command::new(&argv[0]).args(&argv[1..]).output().unwrap();
        assert!(out.status.success(), "{argv:?}: {out:?}");
    }
    publish(&repo, "1.1");

    let base = std::fs::read_to_string(stack.config_path()).unwrap();
    let held = stack.config_path().with_file_name("held.toml");
    std::fs::write(
        &held,
        format!("{base}\n[upgrade]\nmanaged = [\"mf-dovecot\"]\n"),
    )
    .unwrap();
    let c = held.to_str().unwrap();
    let out = mailfleet(&["--config", c, "--json", "upgrade", "holds", "--check"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let checked: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let of = |name: &str| {
        checked
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["server"] == name)
            .cloned()
            .unwrap()
    };
    let s1 = of("store1");
    assert!(s1["error"].is_null(), "{s1:#}");
    let findings = s1["findings"].as_array().unwrap();
    assert_eq!(findings.len(), 2, "{s1:#}");
    let kind = |k: &str| findings.iter().find(|f| f["kind"] == k).unwrap().clone();
    let h = kind("held");
    assert_eq!(
        (&h["package"], &h["from"], &h["to"]),
        (&"mf-dovecot".into(), &"1.0".into(), &"1.1".into())
    );
    let d = kind("depends_on_held");
    assert_eq!(d["package"], "mf-plugin");
    assert_eq!(d["held"], serde_json::json!(["mf-dovecot"]));
    for other in ["ldap1", "mx2", "store2", "proxy1"] {
        let o = of(other);
        assert!(
            o["error"].is_null() && o["findings"] == serde_json::json!([]),
            "{o:#}"
        );
    }
    let human = mailfleet(&[
        "--config",
        c,
        "upgrade",
        "holds",
        "--check",
        "--servers",
        "store1",
    ]);
    let text = String::from_utf8_lossy(&human.stdout);
    assert!(
        text.contains(
            "store1: WOULD STILL UPGRADE: mf-plugin 1.0 -> 1.1, which depends on held mf-dovecot"
        ),
        "{text}"
    );

    // Holding the plugin too: nothing slips past; the held updates wait for upgrade run.
    std::fs::write(
        &held,
        format!("{base}\n[upgrade]\nmanaged = [\"mf-dovecot\", \"mf-plugin\"]\n"),
    )
    .unwrap();
    let all = mailfleet_json(c, &["upgrade", "holds", "--check", "--servers", "store1"]);
    let kinds: Vec<&str> = all[0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["held", "held"], "{all:#}");
}

//! Dashboard logins against the directory (`[serve] ldap_group`): a member of the group logs
//! in with the password of its own directory entry (a real bind on the stack's slapd), an
//! account outside the group, a wrong password and an empty one are refused alike; the
//! audit log has each login with its name; `ldap_group` without the LDAP directory is refused
//! at load naming the key.

use std::process::{Command, Stdio};

use mailfleet_core::config::DirectoryConfig;

use crate::common::{mailfleet, mailfleet_json};

const GROUP: &str = "cn=mailfleet-ops,dc=mailfleet,dc=test";

fn ldap(tool: &str, args: &[&str], input: &str, l: &mailfleet_core::config::LdapConfig) -> String {
    use std::io::Write;
    // The tools take the whole file as the password: a copy without the line's end.
    let secret = l.password_file.with_extension("no-newline");
    let text = std::fs::read_to_string(&l.password_file).unwrap();
    std::fs::write(&secret, text.lines().next().unwrap()).unwrap();
    let mut child = Command::new(tool)
        .args(["-x", "-H", &l.url, "-D", &l.bind_dn, "-y"])
        .arg(&secret)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn members_of_the_directory_group_log_in_with_their_own_password() {
    let stack = mailfleet_stack::TestStack::start().await.expect("stack");
    let ldap_config = stack.ldap_config().unwrap();
    let DirectoryConfig::Ldap(l) = &ldap_config.directory else {
        unreachable!("ldap_config has the LDAP directory")
    };
    let found = ldap(
        "ldapsearch",
        &["-LLL", "-b", &l.base_dn, "(mail=alice@example.com)", "dn"],
        "",
        l,
    );
    let alice = found
        .lines()
        .find_map(|x| x.strip_prefix("dn: "))
        .unwrap_or_else(|| panic!("alice's entry: {found}"))
        .to_string();
    ldap(
        "ldapadd",
        &[],
        &format!("dn: {GROUP}\nobjectClass: groupOfNames\ncn: mailfleet-ops\nmember: {alice}\n"),
        l,
    );

    let layout = mailfleet_stack::Layout::new(&stack.base());
    let text =
        mailfleet_stack::demo::config_text(&layout, &stack.info.host, &stack.info.ports, "ldap");
    let hash = crate::serve_web::operator_hash(&stack.base(), "operator-password");
    let port = mailfleet_stack::ports::free_ports("127.0.0.1", 1)[0];
    let serve = format!(
        "\n[serve]\nparts = [\"web\"]\nlisten = \"127.0.0.1:{port}\"\nldap_group = \"{GROUP}\"\n\
         [[serve.operators]]\nname = \"admin\"\npassword_hash = \"{hash}\"\n"
    );
    // The group needs the LDAP directory.
    let embedded = stack.config_path().with_file_name("embedded-group.toml");
    std::fs::write(
        &embedded,
        std::fs::read_to_string(stack.config_path()).unwrap() + &serve,
    )
    .unwrap();
    let out = mailfleet(&["--config", embedded.to_str().unwrap(), "config", "check"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("serve.ldap_group"),
        "{err}"
    );

    let path = stack.config_path().with_file_name("ldap-group.toml");
    std::fs::write(&path, text + &serve).unwrap();
    let _serve = crate::common::serve_listening(&path, port).await;
    let demo = mailfleet_stack::demo::DEMO_PASSWORD;
    for (name, password, why) in [
        ("bob@example.com", demo, "not in the group"),
        ("alice@example.com", "wrong", "a wrong password"),
        ("alice@example.com", "", "an empty password"),
        ("nobody@example.com", demo, "no such account"),
    ] {
        let (r, _) = crate::serve_web::login(port, name, password);
        assert_eq!(r.status, 401, "{name} with {why} got in");
    }
    let (r, _) = crate::serve_web::login(port, "alice@example.com", demo);
    assert_eq!(r.status, 303, "alice, a member, was refused");
    let session = r.cookie().unwrap();
    let api = crate::serve_web::http(port, "GET", "/api/overview", Some(&session), "");
    assert_eq!(api.status, 200);
    // The configured operator still logs in beside the group.
    let (r, _) = crate::serve_web::login(port, "admin", "operator-password");
    assert_eq!(r.status, 303);

    let log = mailfleet_json(path.to_str().unwrap(), &["audit", "log"]);
    let logins: Vec<(String, String)> = log["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["action"] == "web login")
        .map(|a| {
            (
                a["who"].as_str().unwrap().to_string(),
                a["result"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let ok: Vec<&str> = logins
        .iter()
        .filter(|(_, r)| r == "ok")
        .map(|(w, _)| w.as_str())
        .collect();
    assert_eq!(ok, ["alice@example.com", "admin"], "{logins:?}");
    assert_eq!(logins.len(), 6, "{logins:?}");
}

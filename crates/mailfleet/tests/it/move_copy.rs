//! The move's copy engine against the demo's real stores: the target is told of the account,
//! `doveadm backup` run on store1 over SSH copies alice's mailbox into store2's doveadm
//! service, and both stores then report the same folders, UIDVALIDITY, UIDNEXT, GUIDs, UIDs,
//! flags, keywords, dates and POP3 UIDLs; an incremental pass catches up with new mail and
//! changed flags; a message missing on the target is a difference the verify names.

use std::process::Command;
use std::time::Duration;

use mailfleet_core::Address;
use mailfleet_stack::TestStack;

const D: Duration = Duration::from_secs(60);

/// doveadm of a demo store, run here (the test's own setup of the mailbox).
fn doveadm(stack: &TestStack, store: &str, args: &[&str], stdin: Option<&str>) {
    let conf = stack.base().join(store).join("dovecot.conf");
    let mut c = Command::new("doveadm");
    c.arg("-c").arg(&conf).args(args);
    if stdin.is_some() {
        c.stdin(std::process::Stdio::piped());
    }
    c.stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    if let Some(text) = stdin {
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "doveadm {args:?}: {out:?}");
}

fn save(stack: &TestStack, folder: &str, n: usize, tag: &str) {
    for i in 0..n {
        let msg = format!(
            "From: <bob@example.com>\r\nTo: <alice@example.com>\r\nSubject: {tag} {folder} {i}\r\nMessage-ID: <{tag}-{i}-{}@test>\r\n\r\nbody {i}\r\n",
            folder.len()
        );
        doveadm(
            stack,
            "store1",
            &["save", "-u", "alice@example.com", "-m", folder],
            Some(&msg),
        );
    }
}

#[tokio::test]
async fn a_mailbox_is_copied_exactly_and_caught_up_incrementally() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().unwrap();
    let (store1, store2) = (
        config.fleet.server("store1").unwrap(),
        config.fleet.server("store2").unwrap(),
    );
    let alice = Address::parse("alice@example.com").unwrap();
    let folders = ["INBOX", "Archive 2026", "Work Ü", "Work Ü.Projects"];
    for f in &folders[1..] {
        doveadm(
            &stack,
            "store1",
            &["mailbox", "create", "-u", "alice@example.com", f],
            None,
        );
    }
    for f in folders {
        save(&stack, f, 12, "first");
    }
    doveadm(
        &stack,
        "store1",
        &[
            "flags",
            "add",
            "-u",
            "alice@example.com",
            "\\Seen \\Flagged $Important",
            "mailbox",
            "Work Ü",
            "uid",
            "2:5",
        ],
        None,
    );
    let reach = mailfleet_remote::Reach::new();
    assert!(
        mailfleet_move::provision(&reach, store2, &alice, D)
            .await
            .unwrap()
    );
    assert!(
        !mailfleet_move::provision(&reach, store2, &alice, D)
            .await
            .unwrap(),
        "provisioned once"
    );
    let first = mailfleet_move::pass(&reach, store1, store2, &alice, "", D)
        .await
        .unwrap();
    assert!(!first.state.is_empty());
    let src = mailfleet_move::folders(&reach, store1, &alice, D)
        .await
        .unwrap();
    let dst = mailfleet_move::folders(&reach, store2, &alice, D)
        .await
        .unwrap();
    assert_eq!(src.len(), 4, "{src:?}");
    assert_eq!(src["Work Ü.Projects"].messages, 12);
    assert!(src["Work Ü"].mail[&3].contains("$Important"), "{src:?}");
    assert_eq!(mailfleet_move::compare(&src, &dst), Vec::<String>::new());

    // The user keeps working: new mail, flags changed. The next pass copies only that.
    save(&stack, "INBOX", 5, "second");
    doveadm(
        &stack,
        "store1",
        &[
            "flags",
            "remove",
            "-u",
            "alice@example.com",
            "\\Flagged",
            "mailbox",
            "Work Ü",
            "uid",
            "2",
        ],
        None,
    );
    let src = mailfleet_move::folders(&reach, store1, &alice, D)
        .await
        .unwrap();
    assert!(!mailfleet_move::compare(&src, &dst).is_empty());
    let second = mailfleet_move::pass(&reach, store1, store2, &alice, &first.state, D)
        .await
        .unwrap();
    assert_ne!(second.state, first.state);
    let dst = mailfleet_move::folders(&reach, store2, &alice, D)
        .await
        .unwrap();
    assert_eq!(mailfleet_move::compare(&src, &dst), Vec::<String>::new());
    assert_eq!(dst["INBOX"].messages, 17);

    // A message lost on the target: the verify says which.
    doveadm(
        &stack,
        "store2",
        &[
            "expunge",
            "-u",
            "alice@example.com",
            "mailbox",
            "Archive 2026",
            "uid",
            "4",
        ],
        None,
    );
    let dst = mailfleet_move::folders(&reach, store2, &alice, D)
        .await
        .unwrap();
    let diff = mailfleet_move::compare(&src, &dst);
    assert!(
        diff.iter()
            .any(|d| d == "Archive 2026: UID 4 missing on the target"),
        "{diff:?}"
    );
}

//! A mailbox written to while it is copied: messages land in alice's INBOX on the source
//! (straight into the store, as an LMTP delivery an MTA began before the lock would) during
//! every pass and until just after the lock, on her move to store2 and on her move back onto
//! store1, which still holds her old copy. The move must end with every message on the
//! target under its UID, and switch.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use mailfleet_core::Address;
use mailfleet_stack::TestStack;

use crate::common::{doveadm_save, mailfleet_json};

const D: Duration = Duration::from_secs(60);

/// Moves alice from `from` to `to` while mail is written into her INBOX on `from`; returns
/// how many were written.
fn move_while_written(stack: &Arc<TestStack>, c: &str, from: &str, to: &str) -> usize {
    let locked = Arc::new(AtomicBool::new(false));
    let saved = Arc::new(AtomicUsize::new(0));
    let saver = {
        let (stack, locked, saved) = (stack.clone(), locked.clone(), saved.clone());
        let (from, to) = (from.to_string(), to.to_string());
        std::thread::spawn(move || {
            let mut after_lock = 0;
            for i in 0.. {
                if locked.load(Ordering::SeqCst) {
                    after_lock += 1;
                    if after_lock > 3 {
                        break;
                    }
                }
                doveadm_save(
                    &stack,
                    &from,
                    "alice@example.com",
                    "INBOX",
                    &format!(
                        "Subject: to {to} {i}\r\nMessage-ID: <busy-{to}-{i}@test>\r\n\r\nb\r\n"
                    ),
                );
                saved.fetch_add(1, Ordering::SeqCst);
            }
        })
    };
    while saved.load(Ordering::SeqCst) < 3 {
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut mover = Command::new(env!("CARGO_BIN_EXE_mailfleet"))
        .args(["--config", c, "move", "alice@example.com", "--to", to])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The lock is the directory's: what every MTA and proxy reads.
    loop {
        let account = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
        if account["locked"] == true || account["server"] == to {
            break;
        }
        if let Some(status) = mover.try_wait().unwrap() {
            panic!("the move to {to} ended ({status}) before it took the lock");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    locked.store(true, Ordering::SeqCst);
    saver.join().unwrap();
    let out = mover.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "the move to {to} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let account = mailfleet_json(c, &["accounts", "show", "alice@example.com"]);
    assert_eq!(account["server"], to);
    assert_eq!(account["locked"], false);
    saved.load(Ordering::SeqCst)
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_written_to_the_source_during_the_passes_is_all_moved() {
    let stack = Arc::new(TestStack::start().await.expect("stack"));
    let config = stack.config().unwrap();
    // Several passes before the lock, each while mail is written: a budget no pass fits.
    let base = std::fs::read_to_string(stack.config_path()).unwrap();
    let path = stack.config_path().with_file_name("busy.toml");
    std::fs::write(
        &path,
        format!("{base}\n[move]\nlock_budget = \"100ms\"\nmax_passes = 4\n"),
    )
    .unwrap();
    let c = path.to_str().unwrap().to_string();
    for i in 0..20 {
        doveadm_save(
            &stack,
            "store1",
            "alice@example.com",
            "INBOX",
            &format!("Subject: before {i}\r\nMessage-ID: <busy-before-{i}@test>\r\n\r\nbody\r\n"),
        );
    }
    let reach = mailfleet_remote::Reach::new();
    let alice = Address::parse("alice@example.com").unwrap();
    let mut total = 20;
    for (from, to) in [("store1", "store2"), ("store2", "store1")] {
        let c = c.clone();
        let st = stack.clone();
        let written = tokio::task::spawn_blocking(move || move_while_written(&st, &c, from, to))
            .await
            .unwrap();
        total += written;
        // The old copy stays on the source as it was at the switch.
        let src = mailfleet_move::folders(&reach, config.fleet.server(from).unwrap(), &alice, D)
            .await
            .unwrap();
        let dst = mailfleet_move::folders(&reach, config.fleet.server(to).unwrap(), &alice, D)
            .await
            .unwrap();
        assert_eq!(
            mailfleet_move::compare(&src, &dst),
            Vec::<String>::new(),
            "{from} -> {to}"
        );
        assert_eq!(
            dst["INBOX"].messages as usize, total,
            "{from} -> {to}: {written} written during the move"
        );
    }
}

//! Mail sent through the demo Postfix lands in the store the directory names, and follows
//! the account when `accounts set-server` moves it.

use std::time::Duration;

use mailfleet_stack::TestStack;

use crate::common::{imap_find, mailfleet_ok, send, unique_tag, wait_for_mail};

const DEADLINE: Duration = Duration::from_secs(30);

#[tokio::test]
async fn mail_is_delivered_into_the_store_where_the_account_lives() {
    let stack = TestStack::start().await.expect("stack");
    let p = &stack.info.ports;
    let [store1, store2] = p.stores;
    let tag = unique_tag("deliver");
    send(
        p.smtp,
        "bob@example.com",
        "alice@example.com",
        &format!("{tag} a"),
    )
    .await;
    send(
        p.smtp,
        "bob@example.com",
        "carol@example.org",
        &format!("{tag} c"),
    )
    .await;

    let alice = wait_for_mail(store1.imap, "alice@example.com", &tag, DEADLINE).await;
    assert_eq!(alice.len(), 1, "alice's mail did not arrive on store1");
    assert!(String::from_utf8_lossy(&alice[0]).contains(&format!("Test message {tag} a")));
    let carol = wait_for_mail(store2.imap, "carol@example.org", &tag, DEADLINE).await;
    assert_eq!(carol.len(), 1, "carol's mail did not arrive on store2");

    // Each store holds only its own accounts' mail: no copy on the other one.
    let maildir = stack.base().join("store2/mail/example.com/alice");
    assert!(!maildir.exists(), "alice has a mailbox on store2");
    let maildir = stack.base().join("store1/mail/example.org/carol");
    assert!(!maildir.exists(), "carol has a mailbox on store1");
}

#[tokio::test]
async fn set_server_moves_delivery_of_the_next_mail() {
    let stack = TestStack::start().await.expect("stack");
    let p = &stack.info.ports;
    let [store1, store2] = p.stores;
    let config = stack.config_path();

    let before = unique_tag("before");
    send(p.smtp, "alice@example.com", "carol@example.org", &before).await;
    assert_eq!(
        wait_for_mail(store2.imap, "carol@example.org", &before, DEADLINE)
            .await
            .len(),
        1
    );

    mailfleet_ok(
        &config,
        &["accounts", "set-server", "carol@example.org", "store1"],
    );
    let shown = mailfleet_ok(&config, &["accounts", "show", "carol@example.org"]);
    assert!(shown.contains("store1"), "{shown}");

    let after = unique_tag("after");
    send(p.smtp, "alice@example.com", "carol@example.org", &after).await;
    let moved = wait_for_mail(store1.imap, "carol@example.org", &after, DEADLINE).await;
    assert_eq!(
        moved.len(),
        1,
        "the mail after set-server did not arrive on store1"
    );
    // The old mail stays where it was (moving data is the move command's job), and the new
    // mail did not go to the old store.
    assert!(
        imap_find(store1.imap, "carol@example.org", &before)
            .await
            .is_empty()
    );
    // Read where Dovecot keeps mail, new/ and cur/; the Maildir exists (carol had mail on
    // store2 before), so a missing directory is an error, not zero.
    let maildir = stack.base().join("store2/mail/example.org/carol/Maildir");
    let mut on_old_store = 0;
    for sub in ["new", "cur"] {
        for e in std::fs::read_dir(maildir.join(sub))
            .unwrap_or_else(|e| panic!("{}/{sub}: {e}", maildir.display()))
        {
            let text = std::fs::read_to_string(e.unwrap().path()).unwrap_or_default();
            on_old_store += usize::from(text.contains(&after));
        }
    }
    assert_eq!(on_old_store, 0, "the new mail went to store2");
}

//! The account book's rules on the embedded directory: addresses, servers and hashes checked
//! before anything is stored, imports all or nothing, and routing published after every
//! change (the store's passwd-file rewritten, its mode kept).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::os::unix::fs::PermissionsExt as _;

use mailfleet_core::accounts::AccountError;
use mailfleet_core::directory::{DirectoryError, EmbeddedDirectory, Filter};
use mailfleet_core::{AccountBook, AccountStatus, Config, password};

async fn book(dir: &std::path::Path) -> AccountBook {
    let users = dir.join("store1-users");
    std::fs::write(&users, "").unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o640)).unwrap();
    let text = format!(
        "data_dir = \"data\"\n\
         [[server]]\nname = \"mx1\"\nroles = [\"mta\"]\nhost = \"127.0.0.1\"\nports = {{ smtp = 25 }}\n\
         [[server]]\nname = \"store1\"\nroles = [\"mailbox\"]\nhost = \"127.0.0.1\"\n\
         ports = {{ imap = 143, lmtp = 24 }}\nmaildir_root = \"mail\"\npasswd_file = {:?}\n\
         [[server]]\nname = \"store2\"\nroles = [\"mailbox\"]\nhost = \"127.0.0.2\"\n\
         ports = {{ imap = 143, lmtp = 24 }}\nmaildir_root = \"mail\"\n",
        users.display().to_string()
    );
    let config = Config::parse(&text, &dir.join("mailfleet.toml")).unwrap();
    let directory = EmbeddedDirectory::open(&dir.join("accounts.db"))
        .await
        .unwrap();
    AccountBook::new(Box::new(directory), config.fleet)
}

#[tokio::test]
async fn bad_input_is_refused_before_anything_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let b = book(dir.path()).await;
    assert!(matches!(
        b.add("not an address", "store1", None).await,
        Err(AccountError::Address(_))
    ));
    assert!(matches!(
        b.add("a@example.com", "store9", None).await,
        Err(AccountError::UnknownServer { ref known, .. }) if known == &["store1", "store2"]
    ));
    assert!(matches!(
        b.add("a@example.com", "mx1", None).await,
        Err(AccountError::NotMailbox(_))
    ));
    assert!(matches!(
        b.add("a@example.com", "store1", Some("hunter2")).await,
        Err(AccountError::Hash(_))
    ));
    assert!(
        b.list(&Filter::default()).await.unwrap().is_empty(),
        "nothing was stored"
    );
    assert!(matches!(
        b.show("ghost@example.com").await,
        Err(AccountError::Directory(DirectoryError::NotFound(_)))
    ));
}

#[tokio::test]
async fn changes_publish_routing_to_the_stores_user_file() {
    let dir = tempfile::tempdir().unwrap();
    let b = book(dir.path()).await;
    let users = dir.path().join("store1-users");
    let h = password::hash("secret").unwrap();
    let (a, published) = b
        .add("Alice@Example.com", "store1", Some(&h))
        .await
        .unwrap();
    assert_eq!(a.address.as_str(), "alice@example.com");
    assert_eq!(published.changed, std::slice::from_ref(&users));
    let text = std::fs::read_to_string(&users).unwrap();
    assert_eq!(text, format!("alice@example.com:{h}::::::\n"));
    assert_eq!(
        std::fs::metadata(&users).unwrap().permissions().mode() & 0o777,
        0o640,
        "mode kept"
    );
    // Moved to store2: off store1's file.
    let p = b.set_server("alice@example.com", "store2").await.unwrap();
    assert_eq!(std::fs::read_to_string(&users).unwrap(), "");
    assert_eq!(p.changed, std::slice::from_ref(&users));
    assert!(p.unroutable.is_empty());
    // An unchanged content is not rewritten.
    let p = b.set_locked("alice@example.com", true).await.unwrap();
    assert!(p.changed.is_empty(), "{p:?}");
    let shown = b.show("alice@example.com").await.unwrap();
    assert!(shown.locked);
    b.block_sending("alice@example.com", " compromised ")
        .await
        .unwrap();
    let shown = b.show("alice@example.com").await.unwrap();
    assert_eq!(
        shown.send_block.as_ref().map(|s| s.reason.as_str()),
        Some("compromised")
    );
    assert_eq!(
        shown.status(),
        AccountStatus::Locked,
        "a move's lock shows first"
    );
    b.unblock_sending("alice@example.com").await.unwrap();
    b.remove("alice@example.com").await.unwrap();
    assert!(b.list(&Filter::default()).await.unwrap().is_empty());
}

#[tokio::test]
async fn an_import_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let b = book(dir.path()).await;
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "address,server\nbob@example.com,store1\ncarol@example.com,store7\n",
    )
    .unwrap();
    let e = b.import(&bad).await.unwrap_err().to_string();
    assert!(
        e.contains("line 3") && e.contains("store7") && e.contains("nothing was imported"),
        "{e}"
    );
    let twice = dir.path().join("twice.csv");
    std::fs::write(
        &twice,
        "address,server\nbob@example.com,store1\nBOB@example.com,store2\n",
    )
    .unwrap();
    let e = b.import(&twice).await.unwrap_err().to_string();
    assert!(e.contains("also on line 2"), "{e}");
    assert!(b.list(&Filter::default()).await.unwrap().is_empty());
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "address,server\nbob@example.com,store1\ncarol@example.org,store2\n",
    )
    .unwrap();
    let (n, _) = b.import(&good).await.unwrap();
    assert_eq!(n, 2);
    let only = b
        .list(&Filter {
            domain: Some(" Example.ORG ".into()),
            server: None,
            locked: false,
        })
        .await
        .unwrap();
    assert_eq!(only.len(), 1, "the domain filter is trimmed and case-blind");
    assert!(matches!(
        b.list(&Filter {
            domain: None,
            server: Some("nosuch".into()),
            locked: false,
        })
        .await,
        Err(AccountError::UnknownServer { .. })
    ));
}

//! One suite of account-directory behaviour, run against both backends: the embedded SQLite
//! file and the demo stack's real slapd. Both start with the six demo accounts.

use mailfleet_core::accounts::AccountError;
use mailfleet_core::directory::{DirectoryError, Filter};
use mailfleet_core::{AccountBook, AccountStatus, password};
use mailfleet_stack::TestStack;

#[tokio::test]
async fn embedded_backend_passes_the_suite() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.config().expect("config");
    let book = AccountBook::open(&config)
        .await
        .expect("open embedded directory");
    suite(&book, &stack.base()).await;
}

#[tokio::test]
async fn ldap_backend_passes_the_suite() {
    let stack = TestStack::start().await.expect("stack");
    let config = stack.ldap_config().expect("config");
    let book = AccountBook::open(&config).await.expect("bind to slapd");
    suite(&book, &stack.base()).await;
}

async fn addresses(book: &AccountBook, filter: Filter) -> Vec<String> {
    let list = book.list(&filter).await.expect("list");
    list.iter().map(|a| a.address.to_string()).collect()
}

async fn all(book: &AccountBook) -> Vec<String> {
    addresses(book, Filter::default()).await
}

async fn suite(book: &AccountBook, tmp: &std::path::Path) {
    // Listing: all, by domain, by server; sorted.
    let everyone = all(book).await;
    assert_eq!(
        everyone,
        [
            "alice@example.com",
            "bob@example.com",
            "carol@example.org",
            "dave@example.org",
            "erin@example.com",
            "probe@example.com",
            "probe@example.org"
        ]
    );
    let by_domain = addresses(
        book,
        Filter {
            domain: Some("Example.ORG".into()),
            server: None,
            locked: false,
        },
    )
    .await;
    assert_eq!(
        by_domain,
        ["carol@example.org", "dave@example.org", "probe@example.org"]
    );
    let by_server = addresses(
        book,
        Filter {
            domain: None,
            server: Some("store2".into()),
            locked: false,
        },
    )
    .await;
    assert_eq!(
        by_server,
        [
            "carol@example.org",
            "dave@example.org",
            "erin@example.com",
            "probe@example.org"
        ]
    );
    let both = addresses(
        book,
        Filter {
            domain: Some("example.com".into()),
            server: Some("store2".into()),
            locked: false,
        },
    )
    .await;
    assert_eq!(both, ["erin@example.com"]);
    assert!(matches!(
        book.list(&Filter {
            domain: None,
            server: Some("nosuch".into()),
            locked: false,
        })
        .await,
        Err(AccountError::UnknownServer { .. })
    ));

    // Show and the password hash.
    let alice = book.show("ALICE@example.com").await.expect("show");
    assert_eq!(alice.server, "store1");
    assert_eq!(alice.status(), AccountStatus::Active);
    let hash = book
        .password_hash("alice@example.com")
        .await
        .expect("hash")
        .expect("has one");
    assert!(
        password::verify(mailfleet_stack::demo::DEMO_PASSWORD, &hash),
        "{hash}"
    );
    assert!(matches!(
        book.show("nobody@example.com").await,
        Err(AccountError::Directory(DirectoryError::NotFound(_)))
    ));

    // Add; bad input is refused and changes nothing.
    let h = password::hash("frank-secret").expect("hash");
    let (frank, _) = book
        .add("frank@example.net", "store2", Some(&h))
        .await
        .expect("add");
    assert_eq!(frank.address.as_str(), "frank@example.net");
    assert_eq!(
        book.password_hash("frank@example.net").await.expect("hash"),
        Some(h)
    );
    let before = all(book).await;
    assert!(matches!(
        book.add("frank@example.net", "store1", None).await,
        Err(AccountError::Directory(DirectoryError::Duplicate(_)))
    ));
    assert!(matches!(
        book.add("not-an-address", "store1", None).await,
        Err(AccountError::Address(_))
    ));
    assert!(matches!(
        book.add("gina@example.net", "store9", None).await,
        Err(AccountError::UnknownServer { .. })
    ));
    assert!(matches!(
        book.add("gina@example.net", "mx1", None).await,
        Err(AccountError::NotMailbox(_))
    ));
    assert!(matches!(
        book.add("gina@example.net", "store1", Some("plaintext"))
            .await,
        Err(AccountError::Hash(_))
    ));
    assert_eq!(
        all(book).await,
        before,
        "a refused add changed the directory"
    );
    assert_eq!(
        book.show("frank@example.net").await.expect("show").server,
        "store2"
    );

    // Set server.
    book.set_server("frank@example.net", "store1")
        .await
        .expect("set-server");
    assert_eq!(
        book.show("frank@example.net").await.expect("show").server,
        "store1"
    );
    assert!(matches!(
        book.set_server("frank@example.net", "store7").await,
        Err(AccountError::UnknownServer { .. })
    ));
    assert!(matches!(
        book.set_server("ghost@example.net", "store1").await,
        Err(AccountError::Directory(DirectoryError::NotFound(_)))
    ));
    // Compare and set (the end of a move): only from where the account really is.
    assert!(matches!(
        book.switch_server("frank@example.net", "store2", "store1")
            .await,
        Err(AccountError::Directory(DirectoryError::NotOn { .. }))
    ));
    book.switch_server("frank@example.net", "store1", "store2")
        .await
        .expect("switch from where it is");
    assert_eq!(
        book.show("frank@example.net").await.expect("show").server,
        "store2"
    );
    book.switch_server("frank@example.net", "store2", "store1")
        .await
        .expect("and back");
    assert!(matches!(
        book.switch_server("ghost@example.net", "store1", "store2")
            .await,
        Err(AccountError::Directory(DirectoryError::NotFound(_)))
    ));
    assert_eq!(
        book.show("frank@example.net").await.expect("show").server,
        "store1"
    );

    // Lock, block, and both at once.
    book.set_locked("frank@example.net", true)
        .await
        .expect("lock");
    assert_eq!(
        book.show("frank@example.net").await.expect("show").status(),
        AccountStatus::Locked
    );
    let block = book
        .block_sending("frank@example.net", "sent 5000 spams")
        .await
        .expect("block");
    let f = book.show("frank@example.net").await.expect("show");
    assert!(f.locked);
    // Only the locked, asked of the directory (the probe's `locked` check every round).
    let locked = Filter {
        locked: true,
        ..Filter::default()
    };
    assert_eq!(addresses(book, locked.clone()).await, ["frank@example.net"]);
    assert_eq!(
        f.send_block.as_ref(),
        Some(&block),
        "reason and time survive the round trip"
    );
    book.set_locked("frank@example.net", false)
        .await
        .expect("unlock");
    let f = book.show("frank@example.net").await.expect("show");
    assert_eq!(f.status(), AccountStatus::SendBlocked);
    assert!(addresses(book, locked).await.is_empty(), "unlocked: none");
    assert_eq!(
        f.send_block.expect("still blocked").reason,
        "sent 5000 spams"
    );
    book.unblock_sending("frank@example.net")
        .await
        .expect("unblock");
    assert_eq!(
        book.show("frank@example.net").await.expect("show").status(),
        AccountStatus::Active
    );

    // Remove.
    book.remove("frank@example.net").await.expect("remove");
    assert!(book.show("frank@example.net").await.is_err());
    assert!(matches!(
        book.remove("frank@example.net").await,
        Err(AccountError::Directory(DirectoryError::NotFound(_)))
    ));

    // Import: one bad record and nothing is added; a good file adds everything.
    let bad = tmp.join("bad.csv");
    std::fs::write(
        &bad,
        "address,server\nh1@example.net,store1\nh2@example.net,store9\n",
    )
    .expect("write");
    let err = book
        .import(&bad)
        .await
        .expect_err("unknown server in the file");
    assert!(err.to_string().contains("line 3"), "{err}");
    let dup = tmp.join("dup.csv");
    std::fs::write(
        &dup,
        "address,server\nh1@example.net,store1\nalice@example.com,store1\n",
    )
    .expect("write");
    assert!(matches!(
        book.import(&dup).await,
        Err(AccountError::Directory(DirectoryError::Duplicate(_)))
    ));
    let twice = tmp.join("twice.csv");
    std::fs::write(
        &twice,
        "address,server\nh1@example.net,store1\nH1@example.net,store2\n",
    )
    .expect("write");
    assert!(book.import(&twice).await.is_err());
    assert_eq!(
        all(book).await,
        everyone,
        "a refused import changed the directory"
    );

    let good = tmp.join("good.csv");
    std::fs::write(
        &good,
        format!(
            "address,server,password_hash\nh1@example.net,store1,{}\nh2@example.net,store2,\n",
            password::hash("x").expect("hash")
        ),
    )
    .expect("write");
    assert_eq!(book.import(&good).await.expect("import csv").0, 2);
    let ldif = tmp.join("more.ldif");
    std::fs::write(
        &ldif,
        "version: 1\n\ndn: ou=people,dc=old\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: mail=h3@example.net,ou=people,dc=old\nobjectClass: inetOrgPerson\nmail: h3@example.net\n\
         mailHost: store2\nuserPassword:: e0NSWVBUfSQ2JHNhbHQkaGFzaA==\n",
    )
    .expect("write");
    assert_eq!(book.import(&ldif).await.expect("import ldif").0, 1);
    let h3 = book.show("h3@example.net").await.expect("show");
    assert_eq!(h3.server, "store2");
    assert_eq!(h3.password_hash.as_deref(), Some("{CRYPT}$6$salt$hash"));
    assert_eq!(
        addresses(
            book,
            Filter {
                domain: Some("example.net".into()),
                server: None,
                locked: false,
            }
        )
        .await,
        ["h1@example.net", "h2@example.net", "h3@example.net"]
    );
}

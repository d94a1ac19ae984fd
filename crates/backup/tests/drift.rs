//! Dictionaries follow the content: a run whose new mail no longer looks like what the current
//! dictionary was trained on trains a new one, and mail compressed with either still restores.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::collections::BTreeMap;
use std::path::Path;

use mailfleet_backup::crypto::Keys;
use mailfleet_backup::repo::Repository;
use mailfleet_backup::restore::{Filter, account_dir, to_dir};
use mailfleet_backup::run::{Source, run};
use mailfleet_backup::target::DirTarget;

fn files(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir.join("cur")).unwrap().flatten() {
        out.insert(
            e.file_name().to_string_lossy().into_owned(),
            std::fs::read(e.path()).unwrap(),
        );
    }
    out
}

/// A header of a newsletter in one language, as a list server writes it.
fn english(i: usize) -> String {
    format!(
        "Return-Path: <bounces+{i}@lists.example.net>\nReceived: from mx1.example.net by store1 \
         with LMTP id {i}\nFrom: The Weekly Digest <digest@lists.example.net>\nTo: alice@example.com\n\
         Subject: This week on the list, issue {i}\nList-Id: <digest.lists.example.net>\n\
         List-Unsubscribe: <mailto:leave-{i}@lists.example.net>\nMessage-ID: <{i}@lists.example.net>\n\
         \nshort\n"
    )
}

/// A header of a different world: other fields, other words, other values.
fn other(i: usize) -> String {
    let word = |k: usize| ["zqx", "vuw", "kjp", "ybn", "fgt", "mrl", "sdh", "cve"][(i * 7 + k) % 8];
    format!(
        "X-Kundennummer: {i:08}-{}{}\nAbsender-Kennung: {}{}{}@{}.invalid\nBetreff-Kodierung: \
         {}/{}/{}\nX-Vorgang: {}-{i:06}-{}\nAuftrag: {}{}{}{}\n\nkurz\n",
        word(1),
        word(2),
        word(3),
        word(4),
        i * 31,
        word(5),
        word(6),
        i * 17 % 97,
        word(7),
        word(8),
        i % 13,
        word(9),
        word(10),
        word(11),
        word(12)
    )
}

#[test]
fn new_content_trains_a_new_dictionary_and_old_mail_still_restores() {
    let tmp = tempfile::tempdir().unwrap();
    let md = tmp.path().join("Maildir");
    for d in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(md.join(d)).unwrap();
    }
    let write = |name: String, raw: String| {
        std::fs::write(md.join("cur").join(name), raw).unwrap();
    };
    // A full sample (4,000 header blocks) of one kind of mail trains during the first run.
    for i in 0..4000 {
        write(format!("17000{i:05}.M1P1.store1:2,S"), english(i));
    }
    let sources = [Source {
        server: "store1".into(),
        address: "alice@example.com".into(),
        maildir: md.clone(),
    }];
    let keys = || Some(Keys::from_secret(&[3; 32]));
    let target = || Box::new(DirTarget::new(&tmp.path().join("repo")).unwrap());
    let dicts = || {
        std::fs::read_dir(tmp.path().join("repo/dicts"))
            .unwrap()
            .count()
    };
    let repo = Repository::init(target(), keys()).unwrap();
    run(&repo, &sources, &mut |_| {}).unwrap();
    let trained = dicts();
    assert!(trained >= 1, "the first run trains a header dictionary");

    // The same kind of mail again: no new dictionary.
    for i in 4000..8000 {
        write(format!("17000{i:05}.M1P1.store1:2,S"), english(i));
    }
    let repo = Repository::open(target(), keys()).unwrap();
    run(&repo, &sources, &mut |_| {}).unwrap();
    assert_eq!(
        dicts(),
        trained,
        "content like the dictionary's trains nothing"
    );

    // Mail of another world: the sample compresses far worse with the current dictionary.
    for i in 0..4000 {
        write(format!("18000{i:05}.M1P1.store1:2,S"), other(i));
    }
    let repo = Repository::open(target(), keys()).unwrap();
    run(&repo, &sources, &mut |_| {}).unwrap();
    assert_eq!(
        dicts(),
        trained + 1,
        "drifted content trains a new dictionary"
    );

    let repo = Repository::open(target(), keys()).unwrap();
    let snapshots = repo.snapshots().unwrap();
    for (i, snapshot) in snapshots.iter().enumerate() {
        let out = tmp.path().join(format!("out{i}"));
        let report = to_dir(&repo, snapshot, &Filter::default(), &out).unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(
            files(&account_dir(&out, "alice@example.com")).len(),
            [4000, 8000, 12000][i]
        );
    }
    let last = account_dir(&tmp.path().join("out2"), "alice@example.com");
    assert_eq!(files(&last), files(&md));
}

//! The repository's index and packs: blobs stored once, found through the index after a
//! reopen, read back from the pack being filled and from written packs, snapshots listed
//! and looked up by prefix; encrypted names reveal nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

use std::path::Path;

use mailfleet_backup::crypto::Keys;
use mailfleet_backup::repo::{PutStats, Repository};
use mailfleet_backup::snapshot::Snapshot;
use mailfleet_backup::target::DirTarget;

fn open(dir: &Path, keys: Option<Keys>) -> Repository {
    Repository::open_or_init(Box::new(DirTarget::new(dir).unwrap()), keys).unwrap()
}

fn paths_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            if e.path().is_dir() {
                out.extend(paths_under(&e.path()));
            } else {
                out.push(e.path());
            }
        }
    }
    out
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = paths_under(dir)
        .iter()
        .filter_map(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    names.sort();
    names
}

#[test]
fn a_blob_is_stored_once_and_found_through_the_index_after_reopening() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), None);
    let mut stats = PutStats::default();
    let a = repo.put(b"first blob", &mut stats).unwrap();
    let again = repo.put(b"first blob", &mut stats).unwrap();
    let b = repo.put(b"second blob", &mut stats).unwrap();
    assert_eq!(a, again);
    assert_ne!(a, b);
    assert_eq!((stats.new_blobs, stats.reused_blobs), (2, 1));
    // Before the pack is written: read from the pack being filled, nothing on the target.
    assert_eq!(repo.get(&a).unwrap(), b"first blob");
    assert!(files_under(&dir.path().join("packs")).is_empty());
    repo.flush().unwrap();
    let packs = files_under(&dir.path().join("packs"));
    let indexes = files_under(&dir.path().join("index"));
    assert_eq!(packs.len(), 1, "one pack for both blobs");
    assert_eq!(
        indexes, packs,
        "each pack has its index segment, of the same name"
    );
    assert_eq!(repo.pack_of(&a), repo.pack_of(&b));
    drop(repo);

    let reopened = open(dir.path(), None);
    assert!(reopened.has(&a) && reopened.has(&b));
    assert_eq!(reopened.get(&b).unwrap(), b"second blob");
    let mut stats = PutStats::default();
    reopened.put(b"second blob", &mut stats).unwrap();
    assert_eq!(
        (stats.new_blobs, stats.reused_blobs),
        (0, 1),
        "deduplicated across runs"
    );
    let by_pack = reopened.blobs_by_pack().unwrap();
    assert_eq!(by_pack.values().map(Vec::len).sum::<usize>(), 2);
    assert!(reopened.damaged_indexes().is_empty());
}

#[test]
fn a_pack_without_its_index_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), None);
    let id = repo
        .put(b"orphaned once the index is gone", &mut PutStats::default())
        .unwrap();
    repo.flush().unwrap();
    drop(repo);
    let index_dir = dir.path().join("index");
    for e in std::fs::read_dir(&index_dir).unwrap().flatten() {
        std::fs::remove_file(e.path()).unwrap();
    }
    let reopened = open(dir.path(), None);
    assert!(
        !reopened.has(&id),
        "a blob only counts once its index segment is written"
    );
    // Storing it again writes a new pack: the first is garbage for prune.
    let mut stats = PutStats::default();
    reopened
        .put(b"orphaned once the index is gone", &mut stats)
        .unwrap();
    assert_eq!(stats.new_blobs, 1);
}

#[test]
fn large_content_fills_several_packs() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), None);
    let mut stats = PutStats::default();
    // Incompressible 1 MiB blobs: 40 of them pass the 16 MiB pack size at least twice.
    let mut ids = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for _ in 0..40 {
        let blob: Vec<u8> = (0..1 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        ids.push((repo.put(&blob, &mut stats).unwrap(), blake3::hash(&blob)));
    }
    repo.flush().unwrap();
    let packs = files_under(&dir.path().join("packs"));
    assert!(packs.len() >= 3, "{} packs", packs.len());
    let reopened = open(dir.path(), None);
    for (id, hash) in ids {
        assert_eq!(blake3::hash(&reopened.get(&id).unwrap()), hash);
    }
}

#[test]
fn snapshots_are_listed_in_time_order_and_found_by_prefix() {
    let dir = tempfile::tempdir().unwrap();
    let repo = open(dir.path(), None);
    for (id, time) in [
        ("20261130T100000Z-aaaa", "2026-11-30T10:00:00Z"),
        ("20261201T100000Z-bbbb", "2026-12-01T10:00:00Z"),
    ] {
        let t: chrono::DateTime<chrono::Utc> = time.parse().unwrap();
        repo.save_snapshot(&Snapshot {
            id: id.into(),
            time: t,
            finished: t,
            parent: None,
            accounts: Vec::new(),
        })
        .unwrap();
    }
    let all = repo.snapshots().unwrap();
    assert_eq!(
        all.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        ["20261130T100000Z-aaaa", "20261201T100000Z-bbbb"]
    );
    assert_eq!(repo.snapshot("latest").unwrap().id, "20261201T100000Z-bbbb");
    assert_eq!(
        repo.snapshot("20261130").unwrap().id,
        "20261130T100000Z-aaaa"
    );
    assert!(
        repo.snapshot("2026").is_err(),
        "an ambiguous prefix is refused"
    );
    assert!(repo.snapshot("nosuch").is_err());
    repo.forget_snapshot("20261130T100000Z-aaaa").unwrap();
    assert_eq!(repo.snapshots().unwrap().len(), 1);
}

#[test]
fn encrypted_blob_names_and_packs_say_nothing_of_the_content() {
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("key");
    std::fs::write(&key_file, mailfleet_backup::crypto::generate().unwrap()).unwrap();
    let keys = Keys::load(&key_file).unwrap();
    let repo = open(&dir.path().join("repo"), Some(keys));
    let content = b"a well-known attachment everybody has";
    let id = repo.put(content, &mut PutStats::default()).unwrap();
    assert_ne!(id, mailfleet_backup::BlobId::of(content), "keyed names");
    repo.flush().unwrap();
    let packs = paths_under(&dir.path().join("repo/packs"));
    assert_eq!(packs.len(), 1);
    for p in packs {
        let bytes = std::fs::read(&p).unwrap();
        assert!(
            !bytes.windows(content.len()).any(|w| w == content),
            "plaintext in a pack"
        );
    }
    assert_eq!(repo.get(&id).unwrap(), content);
}

fn open_cached(dir: &Path, cache: &Path) -> Repository {
    let repo =
        Repository::open_for_backup(Box::new(DirTarget::new(dir).unwrap()), None, cache).unwrap();
    repo.reload_index().unwrap();
    repo
}

#[test]
fn the_local_index_file_serves_lookups_and_is_rebuilt_when_stale_or_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let (repo_dir, cache) = (dir.path().join("repo"), dir.path().join("cache"));
    let repo = open_cached(&repo_dir, &cache);
    let mut stats = PutStats::default();
    let ids: Vec<_> = (0..300)
        .map(|i| {
            repo.put(format!("blob {i}").as_bytes(), &mut stats)
                .unwrap()
        })
        .collect();
    repo.flush().unwrap();
    repo.settle_index().unwrap();
    let file = cache.join(&repo.config.id).join("blobs.index");
    assert!(file.exists(), "the run's blobs went into the local file");
    let second = repo.put(b"in a second pack", &mut stats).unwrap();
    repo.flush().unwrap();
    drop(repo);

    // Reopened: the file covers the first pack, the second segment is read from the target.
    let repo = open_cached(&repo_dir, &cache);
    assert!(ids.iter().all(|id| repo.has(id)) && repo.has(&second));
    assert_eq!(repo.get(&ids[7]).unwrap(), b"blob 7");
    assert_eq!(repo.stored().unwrap().0, 301);
    repo.settle_index().unwrap();
    drop(repo);

    // Damaged: rebuilt from the segments, nothing lost.
    let mut bytes = std::fs::read(&file).unwrap();
    bytes[40] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let repo = open_cached(&repo_dir, &cache);
    assert!(ids.iter().all(|id| repo.has(id)) && repo.has(&second));
    drop(repo);

    // A pack the file names is gone (as after a prune): the file is not trusted.
    let repo = open_cached(&repo_dir, &cache);
    repo.settle_index().unwrap();
    let pack = repo.pack_of(&second).unwrap();
    drop(repo);
    std::fs::remove_file(repo_dir.join("index").join(&pack)).unwrap();
    let repo = open_cached(&repo_dir, &cache);
    assert!(
        !repo.has(&second),
        "its segment is gone: the blob no longer counts"
    );
    assert!(repo.has(&ids[0]));
}

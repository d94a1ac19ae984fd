//! Backups of Maildir stores: a content-addressed repository of zstd-compressed blobs where
//! the same message, the same MIME part and the same large chunk are each stored once;
//! incremental snapshots of every account's folders, flags and UIDs; byte-identical restores.
//!
//! Layout: [`target`] (where bytes go: a directory written atomically, or [`s3`]), [`worker`]
//! (every target operation in a child process under a deadline), [`repo`] (blobs in [`pack`]s,
//! their index, snapshots, whole packs cached for reads that walk through them; [`crypto`] when encrypted;
//! [`dict`]: compression dictionaries trained from the repository's data; small blobs
//! compressed together in groups), [`recipe`] (a message split into parts
//! and rebuilt), [`maildir`] (reading a live Maildir without Dovecot's locks), [`snapshot`]
//! (what a snapshot records), [`run`] (a backup run), [`restore`] (to a directory) and
//! [`into_store`] (over IMAP), [`verify`], [`maintenance`] (forget, prune, diff), [`lock`];
//! [`command`]: the commands (run with its hooks, restore, list...) for the CLI and the daemon.

mod blob_index;
mod blocking;
mod codec;
pub mod command;
pub mod crypto;
pub mod dict;
pub mod error;
mod group;
pub mod id;
mod index_file;
pub mod into_store;
mod ioprio;
pub mod lock;
pub mod maildir;
pub mod maintenance;
pub mod pack;
mod pack_cache;
pub mod recipe;
pub mod repo;
mod repo_dicts;
mod repo_groups;
mod repo_index;
mod repo_read;
pub mod restore;
pub mod run;
pub mod s3;
pub mod snapshot;
pub mod snapshots;
pub mod target;
pub mod verify;
pub mod worker;

pub use error::BackupError;
pub use id::BlobId;
pub use repo::Repository;

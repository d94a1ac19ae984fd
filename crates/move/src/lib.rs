//! Moving mailboxes between stores while their users keep working: incremental copies with
//! Dovecot's own replication (`doveadm backup` over the target's doveadm TCP service, run on
//! the source store through its access), so UIDs, UIDVALIDITY, flags, keywords, GUIDs and
//! dates stay exactly as they were; then a short lock, a verify of both sides, the switch.
//!
//! Layout: [`copy`] (making the target know the account, one copy pass), [`verify`] (each
//! folder's state on a store, compared), [`sequence`] (one account's whole move), [`error`].

pub mod copy;
pub mod error;
pub mod sequence;
pub mod verify;

pub use copy::{Pass, pass, provision};
pub use error::MoveError;
pub use sequence::{MoveOptions, Moved, move_account};
pub use verify::{FolderState, compare, folders};

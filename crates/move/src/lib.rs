//! Moving mailboxes between stores while their users keep working: incremental copies with
//! Dovecot's own replication (`doveadm backup -R` run on the target store through its access,
//! pulling from the source's doveadm TCP service), so UIDs, UIDVALIDITY, flags, keywords, GUIDs and
//! dates stay exactly as they were; then a short lock, a verify of both sides, the switch.
//!
//! Layout: [`copy`] (making the target know the account, one copy pass), [`verify`] (each
//! folder's state on a store, compared), [`journal`] (every move's recorded phase),
//! [`sequence`] (one account's whole move, continued from its phase), [`plan`] (what goes
//! where, with room to spare), [`batch`] (many moves at once), [`purge`] (old copies deleted
//! after their grace period, unless written to late), [`throttle`] (waiting while a store is
//! busy), [`notice`] (mail to admins and users),
//! [`error`].

pub mod batch;
pub mod command;
pub mod copy;
pub mod entry;
pub mod error;
pub mod journal;
pub mod notice;
pub mod phase;
pub mod plan;
pub mod purge;
pub mod sequence;
pub mod throttle;
pub mod verify;

pub use batch::{BatchOptions, BatchReport, Ended, Halt, Progress, Quiet};
pub use copy::{Pass, durable, pass, provision};
pub use error::MoveError;
pub use journal::{Entry, Journal, JournalError, Phase};
pub use plan::{Placement, Plan, Request, StoreSpace, plan, record};
pub use sequence::{MoveOptions, Moved, Mover, move_account};
pub use verify::{FolderState, Size, compare, folders, size};

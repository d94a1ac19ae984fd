//! Clients for the protocols a mail fleet speaks, shared by the probes, restores, moves, the
//! alarm mailer and the tests: nothing else opens mail connections by hand.
//!
//! Layout: [`clock`] (a deadline on every command, optional step timing), [`error`] (what
//! failed, and whether a retry can help), [`tls`] (rustls, implicit TLS and STARTTLS with the
//! fleet's verification settings), [`line`] (capped line reading, connecting), [`reply`]
//! (SMTP replies, pure), and one file per protocol: [`smtp`] (SMTP and LMTP), [`imap`] (over
//! `async-imap`), [`pop3`], [`http`] (over `hyper`).

pub mod clock;
pub mod error;
pub mod http;
pub mod imap;
pub mod line;
pub mod pop3;
pub mod reply;
pub mod smtp;
pub mod tls;

pub use clock::{Clock, Step};
pub use error::{ErrorKind, MailError};
pub use imap::Imap;
pub use pop3::Pop3;
pub use smtp::Smtp;
pub use tls::{Endpoint, Tls, TlsError, TlsInfo};

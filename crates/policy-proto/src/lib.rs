//! The wire formats of mailfleet's policy service, without I/O so they can be tested table by
//! table and fuzzed: [`policy`] (Postfix's policy delegation protocol: `name=value` lines, an
//! empty line, one `action=` reply) and [`milter`] (the Sendmail milter protocol Postfix speaks
//! for `smtpd_milters` and `non_smtpd_milters`).

pub mod milter;
pub mod policy;

//! Integration tests: the built `mailfleet` binary and the libraries against a real mail stack
//! (Postfix, Dovecot, slapd, Redis) started on loopback for each test.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails by panicking

mod audit;
mod backup;
mod backup_crash;
mod backup_encrypted;
mod backup_hung;
mod backup_into_store;
mod backup_maintenance;
mod backup_on_stores;
mod backup_s3;
mod common;
mod config_errors;
mod corpus;
mod defects_backup;
mod defects_policy;
mod defects_probe;
mod defects_readme;
mod defects_report;
mod delivery;
pub(crate) mod demo_cli;
mod directory_suite;
mod exit_codes;
pub(crate) mod hung_mount;
mod hung_mount_ssh;
mod monitor;
mod move_account;
mod move_copy;
mod move_lock;
mod move_plan;
mod move_purge;
mod move_resume;
mod policy;
mod policy_dnsbl;
mod policy_reconcile;
mod policy_redis;
mod policy_two_mtas;
mod policy_unblock;
mod probe;
mod reach;
mod report_demo;
mod report_reach;
mod shift;
mod shutdown;
mod tls;

//! Schema migrations for the Gatehouse auth service.
//!
//! Migrations describe tables with sea-query only and never import entity
//! code, so an old migration keeps meaning what it meant when it shipped.
//! Timestamps are stored as Unix milliseconds (`BIGINT`) so that comparisons
//! in SQL behave identically on SQLite and PostgreSQL.

pub use sea_orm_migration::prelude::*;

mod m20260101_000001_init;
mod m20261128_000001_session_generations;
mod m20261128_000002_mail_outbox;
mod m20261129_000001_account_events;
mod m20261130_000001_usernames;
mod m20261201_000001_signing_keys;

/// Every migration, oldest first; `gatehouse migrate` and the server start
/// both run [`MigratorTrait::up`] on it.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20260101_000001_init::Migration),
            Box::new(m20261128_000001_session_generations::Migration),
            Box::new(m20261128_000002_mail_outbox::Migration),
            Box::new(m20261129_000001_account_events::Migration),
            Box::new(m20261130_000001_usernames::Migration),
            Box::new(m20261201_000001_signing_keys::Migration),
        ]
    }
}

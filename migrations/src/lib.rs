//! Schema migrations for the Gatehouse auth service.
//!
//! Migrations describe tables with sea-query only and never import entity
//! code, so an old migration keeps meaning what it meant when it shipped.

pub use sea_orm_migration::prelude::*;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![]
    }
}

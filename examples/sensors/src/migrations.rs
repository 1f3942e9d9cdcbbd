//! The example's own tables, as sea-orm migrations beside the auth
//! service's ([`gatehouse_migrations::Migrator`]) in the same database.
//!
//! sea-orm-migration refuses to run when its bookkeeping table names a
//! version it does not know, so the two migrators must not share one: this
//! one keeps its versions in `sensors_migrations`, the auth one in
//! `seaql_migrations`. Either may run first, and each run is idempotent.
//!
//! As in `gatehouse-migrations`, tables are described with sea-query only
//! (no entity imports) and timestamps are Unix milliseconds (`BIGINT`).

use sea_orm::DatabaseConnection;
use sea_orm_migration::prelude::*;

mod m20261201_000001_sensors;

/// The bookkeeping table of [`Migrator`].
pub const MIGRATION_TABLE: &str = "sensors_migrations";

/// Every migration of the example, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20261201_000001_sensors::Migration)]
    }

    fn migration_table_name() -> DynIden {
        Alias::new(MIGRATION_TABLE).into_iden()
    }
}

/// Applies every pending migration of the example.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    Migrator::up(db, None).await
}

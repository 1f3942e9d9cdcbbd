//! Retired token generations of a session, so that every token rotated away
//! by a refresh keeps working for the grace period, not only the one just
//! before the current generation (several tabs refreshing one after
//! another within seconds).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000001_session_generations"
    }
}

#[derive(Iden)]
enum SessionGenerations {
    Table,
    SessionId,
    Generation,
    RetiredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SessionGenerations::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SessionGenerations::SessionId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(SessionGenerations::Generation)
                            .string_len(64)
                            .not_null(),
                    )
                    // Unix milliseconds, like every timestamp column.
                    .col(
                        ColumnDef::new(SessionGenerations::RetiredAt)
                            .big_integer()
                            .not_null(),
                    )
                    .primary_key(
                        Index::create()
                            .col(SessionGenerations::SessionId)
                            .col(SessionGenerations::Generation),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_session_generations_retired_at")
                    .table(SessionGenerations::Table)
                    .col(SessionGenerations::RetiredAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SessionGenerations::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}

//! Optional usernames: a nullable `username` column on `users`, stored
//! lower-case, unique through an index. Both SQLite and PostgreSQL let any
//! number of rows hold NULL in a unique index, so accounts without a
//! username do not clash. Existing rows get NULL.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261130_000001_usernames"
    }
}

#[derive(Iden)]
enum Users {
    Table,
    Username,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .add_column(ColumnDef::new(Users::Username).string_len(32).null())
                    .to_owned(),
            )
            .await?;
        // The unique index is what decides a race between two claims of
        // the same name (the loser gets CONFLICT).
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_users_username")
                    .table(Users::Table)
                    .col(Users::Username)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_users_username")
                    .table(Users::Table)
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Users::Table)
                    .drop_column(Users::Username)
                    .to_owned(),
            )
            .await
    }
}

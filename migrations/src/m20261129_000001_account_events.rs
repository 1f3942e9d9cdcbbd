//! Account events: what happened to a user's sessions and account
//! (`session.revoked`, `role.changed`, `profile.updated`), written in the
//! same transaction as the change itself. `auth.events` subscribers read
//! them from here, so a subscriber on another instance, or one that
//! reconnects with the last id it saw, misses nothing.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261129_000001_account_events"
    }
}

#[derive(Iden)]
enum AccountEvents {
    Table,
    Id,
    UserId,
    SessionId,
    Kind,
    Payload,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // No foreign key to the user: the events of a deleted account must
        // outlive it long enough to reach its subscribers. `session_id` is
        // set for `session.revoked`, so a subscriber reads only its own
        // session's revocation besides the account-wide events.
        manager
            .create_table(
                Table::create()
                    .table(AccountEvents::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(AccountEvents::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(AccountEvents::UserId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(AccountEvents::SessionId)
                            .string_len(36)
                            .null(),
                    )
                    .col(
                        ColumnDef::new(AccountEvents::Kind)
                            .string_len(32)
                            .not_null(),
                    )
                    .col(ColumnDef::new(AccountEvents::Payload).text().not_null())
                    .col(
                        ColumnDef::new(AccountEvents::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .to_owned(),
            )
            .await?;
        // A subscriber's read: its user's events after an id.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_account_events_user_id")
                    .table(AccountEvents::Table)
                    .col(AccountEvents::UserId)
                    .col(AccountEvents::Id)
                    .to_owned(),
            )
            .await?;
        // Housekeeping's prune by age.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_account_events_created_at")
                    .table(AccountEvents::Table)
                    .col(AccountEvents::CreatedAt)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(AccountEvents::Table).to_owned())
            .await
    }
}

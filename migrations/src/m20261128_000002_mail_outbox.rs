//! The mail outbox: mails are written to this table in the same transaction
//! as whatever they announce (a password-reset token), and a worker sends
//! them afterwards, so the request answers without waiting for a mail server
//! and a mail is never lost because the server was down or the process died.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261128_000002_mail_outbox"
    }
}

#[derive(Iden)]
enum MailOutbox {
    Table,
    Id,
    Recipient,
    Subject,
    Body,
    State,
    Attempts,
    CreatedAt,
    DueAt,
    SentAt,
    LastError,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `state` is `pending`, `sent` or `failed`. `due_at` is when a worker
        // may next take the row: the time of the next attempt while pending,
        // pushed forward while a worker holds it (its lease), so one column
        // serves both claims and retry back-off. `body` holds the rendered
        // text (with the live reset token) only while the mail is pending;
        // it is cleared once the mail is sent or given up.
        manager
            .create_table(
                Table::create()
                    .table(MailOutbox::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(MailOutbox::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(MailOutbox::Recipient)
                            .string_len(400)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(MailOutbox::Subject)
                            .string_len(400)
                            .not_null(),
                    )
                    .col(ColumnDef::new(MailOutbox::Body).text().null())
                    .col(ColumnDef::new(MailOutbox::State).string_len(16).not_null())
                    .col(ColumnDef::new(MailOutbox::Attempts).integer().not_null())
                    .col(
                        ColumnDef::new(MailOutbox::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(MailOutbox::DueAt).big_integer().not_null())
                    .col(ColumnDef::new(MailOutbox::SentAt).big_integer().null())
                    .col(ColumnDef::new(MailOutbox::LastError).string_len(500).null())
                    .to_owned(),
            )
            .await?;
        // The worker's query: pending rows by due time.
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_mail_outbox_state_due")
                    .table(MailOutbox::Table)
                    .col(MailOutbox::State)
                    .col(MailOutbox::DueAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(MailOutbox::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

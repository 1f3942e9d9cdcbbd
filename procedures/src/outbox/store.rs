//! The outbox's statements on the `mail_outbox` table.

use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DbBackend, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};

use super::OutboxSettings;
use crate::db::{now_ms, sql};
use crate::entities::mail_outbox::{ActiveModel, Column, Entity};
use crate::mail::Mail;

const PENDING: &str = "pending";
const SENT: &str = "sent";
const FAILED: &str = "failed";
/// Rows claimed per query.
const BATCH: usize = 10;
/// Sent and failed rows are kept this long (for inspection), then deleted.
const KEEP_DONE_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest error text stored with a row.
const MAX_ERROR_CHARS: usize = 480;

/// Mails waiting to be sent, on every instance.
pub async fn pending_count(db: &impl ConnectionTrait) -> Result<i64, DbErr> {
    let n = Entity::find()
        .filter(Column::State.eq(PENDING))
        .count(db)
        .await?;
    Ok(i64::try_from(n).unwrap_or(i64::MAX))
}

/// Deletes sent and failed rows older than a day. Pending rows stay for a
/// worker, which gives up those older than the token lifetime.
pub async fn housekeeping(db: &impl ConnectionTrait, now: i64) -> Result<(), DbErr> {
    Entity::delete_many()
        .filter(Column::State.ne(PENDING))
        .filter(Column::CreatedAt.lt(now.saturating_sub(KEEP_DONE_MS)))
        .exec(db)
        .await?;
    Ok(())
}

/// Queues one mail whose body is already sealed for row `id`.
pub(super) async fn insert(
    db: &impl ConnectionTrait,
    id: String,
    mail: &Mail,
    sealed_body: String,
    now: i64,
) -> Result<(), DbErr> {
    ActiveModel {
        id: Set(id),
        recipient: Set(mail.to.clone()),
        subject: Set(mail.subject.clone()),
        body: Set(Some(sealed_body)),
        state: Set(PENDING.to_owned()),
        attempts: Set(0),
        created_at: Set(now),
        due_at: Set(now),
        sent_at: Set(None),
        last_error: Set(None),
    }
    .insert(db)
    .await?;
    Ok(())
}

/// A row taken by this worker: `attempts` (already counting this attempt)
/// identifies the claim, so a worker whose lease ran out cannot overwrite
/// the outcome of the one that took the row after it.
#[derive(Debug)]
pub(super) struct Claimed {
    pub id: String,
    pub recipient: String,
    pub subject: String,
    pub body: Option<String>,
    pub attempts: i32,
    pub created_at: i64,
}

/// Whether any row is due: a read, so an idle worker's polls never take
/// SQLite's write lock away from requests.
pub(super) async fn any_due(db: &DatabaseConnection, now: i64) -> Result<bool, DbErr> {
    let due = Entity::find()
        .select_only()
        .column(Column::Id)
        .filter(Column::State.eq(PENDING))
        .filter(Column::DueAt.lte(now))
        .limit(1)
        .into_tuple::<String>()
        .all(db)
        .await?;
    Ok(!due.is_empty())
}

/// Takes up to [`BATCH`] due rows, moving their `due_at` to the end of the
/// lease and counting the attempt, in one statement. Raw SQL: the
/// builder has no `FOR UPDATE SKIP LOCKED` inside a CTE nor SQLite's
/// `UPDATE … RETURNING` over a sub-select (see [`sql`] for the
/// placeholders).
pub(super) async fn claim(
    db: &DatabaseConnection,
    now: i64,
    lease_ms: i64,
) -> Result<Vec<Claimed>, DbErr> {
    let backend = db.get_database_backend();
    let text = if backend == DbBackend::Postgres {
        // The rows are picked and locked first, in a CTE that is run once
        // (as a plain `IN (subquery)` the planner may re-run the locking
        // subquery per row); rows another worker holds are skipped, not
        // waited for, and a locked row is re-checked at its newest version.
        format!(
            "WITH picked AS MATERIALIZED ( \
               SELECT id FROM mail_outbox WHERE state = '{PENDING}' AND due_at <= $2 \
               ORDER BY due_at LIMIT {BATCH} FOR UPDATE SKIP LOCKED) \
             UPDATE mail_outbox SET due_at = $1, attempts = mail_outbox.attempts + 1 \
             FROM picked WHERE mail_outbox.id = picked.id \
             RETURNING mail_outbox.id, mail_outbox.recipient, mail_outbox.subject, \
               mail_outbox.body, mail_outbox.attempts, mail_outbox.created_at"
        )
    } else {
        // SQLite runs one write statement at a time: pick and update cannot
        // interleave with another worker's.
        format!(
            "UPDATE mail_outbox SET due_at = $1, attempts = attempts + 1 \
             WHERE id IN ( \
               SELECT id FROM mail_outbox WHERE state = '{PENDING}' AND due_at <= $2 \
               ORDER BY due_at LIMIT {BATCH}) \
             RETURNING id, recipient, subject, body, attempts, created_at"
        )
    };
    let statement = sql(
        backend,
        &text,
        vec![now.saturating_add(lease_ms).into(), now.into()],
    );
    let rows = db.query_all_raw(statement).await?;
    rows.into_iter()
        .map(|row| {
            Ok(Claimed {
                id: row.try_get_by_index(0)?,
                recipient: row.try_get_by_index(1)?,
                subject: row.try_get_by_index(2)?,
                body: row.try_get_by_index(3)?,
                attempts: row.try_get_by_index(4)?,
                created_at: row.try_get_by_index(5)?,
            })
        })
        .collect()
}

/// What became of one claimed row.
pub(super) enum Outcome {
    Sent,
    Retry { error: String },
    Failed { error: String },
}

/// Records the outcome of a claim, only if the claim is still this
/// worker's (`attempts` unchanged). Sent and failed rows lose their body
/// (the token is not kept longer than needed).
pub(super) async fn record(
    db: &DatabaseConnection,
    row: &Claimed,
    outcome: &Outcome,
    settings: &OutboxSettings,
) -> Result<(), DbErr> {
    let now = now_ms();
    let update = Entity::update_many()
        .filter(Column::Id.eq(row.id.clone()))
        .filter(Column::Attempts.eq(row.attempts));
    let update = match outcome {
        Outcome::Sent => update
            .col_expr(Column::State, Expr::value(SENT))
            .col_expr(Column::SentAt, Expr::value(now))
            .col_expr(Column::Body, Expr::value(Option::<String>::None))
            .col_expr(Column::LastError, Expr::value(Option::<String>::None)),
        Outcome::Retry { error } => {
            let attempts = u32::try_from(row.attempts).unwrap_or(1);
            let due = now.saturating_add(super::ms(settings.backoff(attempts)));
            update
                .col_expr(Column::DueAt, Expr::value(due))
                .col_expr(Column::LastError, Expr::value(truncate(error)))
                .filter(Column::State.eq(PENDING))
        }
        Outcome::Failed { error } => update
            .col_expr(Column::State, Expr::value(FAILED))
            .col_expr(Column::Body, Expr::value(Option::<String>::None))
            .col_expr(Column::LastError, Expr::value(truncate(error)))
            .col_expr(Column::DueAt, Expr::value(now)),
    };
    update.exec(db).await?;
    Ok(())
}

fn truncate(error: &str) -> String {
    error.chars().take(MAX_ERROR_CHARS).collect()
}

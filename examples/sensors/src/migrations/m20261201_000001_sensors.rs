//! `sensor` and its readings. A reading's id is an auto-increment integer:
//! `sensors.onReading` uses it as the event id a client resumes after, so
//! it must only grow (SQLite's `AUTOINCREMENT` never reuses an id, not even
//! the last one after it is deleted; PostgreSQL's sequence neither).

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000001_sensors"
    }
}

#[derive(Iden)]
enum Sensor {
    Table,
    Id,
    Name,
    Unit,
    CreatedBy,
    CreatedAt,
}

#[derive(Iden)]
enum SensorReading {
    Table,
    Id,
    SensorId,
    Value,
    RecordedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Sensor::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(Sensor::Id)
                            .string_len(36)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(Sensor::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Sensor::Unit).string_len(100).not_null())
                    .col(ColumnDef::new(Sensor::CreatedBy).string_len(320).not_null())
                    .col(ColumnDef::new(Sensor::CreatedAt).big_integer().not_null())
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SensorReading::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SensorReading::Id)
                            .big_integer()
                            .not_null()
                            .auto_increment()
                            .primary_key(),
                    )
                    .col(
                        ColumnDef::new(SensorReading::SensorId)
                            .string_len(36)
                            .not_null(),
                    )
                    .col(ColumnDef::new(SensorReading::Value).double().not_null())
                    .col(
                        ColumnDef::new(SensorReading::RecordedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_sensor_reading_sensor")
                            .from(SensorReading::Table, SensorReading::SensorId)
                            .to(Sensor::Table, Sensor::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Every reading query is "this sensor's readings by id".
        manager
            .create_index(
                Index::create()
                    .if_not_exists()
                    .name("idx_sensor_reading_sensor_id")
                    .table(SensorReading::Table)
                    .col(SensorReading::SensorId)
                    .col(SensorReading::Id)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SensorReading::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table(Sensor::Table).if_exists().to_owned())
            .await?;
        Ok(())
    }
}

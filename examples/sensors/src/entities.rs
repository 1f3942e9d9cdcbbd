//! sea-orm entities of the tables [`crate::migrations`] creates.
//! Timestamps are Unix milliseconds, as in the auth service's tables.

/// A sensor. `created_by` is the email of the user who created it.
pub mod sensor {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sensor")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub name: String,
        pub unit: String,
        pub created_by: String,
        pub created_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(has_many = "super::sensor_reading::Entity")]
        Reading,
    }

    impl Related<super::sensor_reading::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Reading.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// One value of a sensor. `id` only grows: it is the event id of
/// `sensors.onReading`.
pub mod sensor_reading {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "sensor_reading")]
    pub struct Model {
        #[sea_orm(primary_key)]
        pub id: i64,
        pub sensor_id: String,
        pub value: f64,
        pub recorded_at: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {
        #[sea_orm(
            belongs_to = "super::sensor::Entity",
            from = "Column::SensorId",
            to = "super::sensor::Column::Id",
            on_delete = "Cascade"
        )]
        Sensor,
    }

    impl Related<super::sensor::Entity> for Entity {
        fn to() -> RelationDef {
            Relation::Sensor.def()
        }
    }

    impl ActiveModelBehavior for ActiveModel {}
}

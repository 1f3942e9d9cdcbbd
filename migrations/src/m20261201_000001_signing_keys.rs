//! The key set for asymmetric token signing (`JWT_ALGORITHM` EdDSA, ES256 or
//! RS256), shared by every instance on the database so a rotation on one is
//! picked up by the others without a restart.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000001_signing_keys"
    }
}

#[derive(Iden)]
enum SigningKeys {
    Table,
    Kid,
    Alg,
    PublicJwk,
    PrivateKey,
    CreatedAt,
    RetiredAt,
    NotAfter,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // `public_jwk` is the public key as an RFC 7517 JWK (what
        // `/.well-known/jwks.json` serves); `private_key` is the private key
        // sealed with AES-256-GCM under a key from the environment, never in
        // the clear. A key without `retired_at` signs (the newest one) and
        // verifies; a retired key only verifies, until `not_after`, after
        // which it is pruned.
        manager
            .create_table(
                Table::create()
                    .table(SigningKeys::Table)
                    .if_not_exists()
                    .col(
                        ColumnDef::new(SigningKeys::Kid)
                            .string_len(100)
                            .not_null()
                            .primary_key(),
                    )
                    .col(ColumnDef::new(SigningKeys::Alg).string_len(16).not_null())
                    .col(ColumnDef::new(SigningKeys::PublicJwk).text().not_null())
                    .col(ColumnDef::new(SigningKeys::PrivateKey).text().not_null())
                    .col(
                        ColumnDef::new(SigningKeys::CreatedAt)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ColumnDef::new(SigningKeys::RetiredAt).big_integer().null())
                    .col(ColumnDef::new(SigningKeys::NotAfter).big_integer().null())
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(SigningKeys::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        Ok(())
    }
}

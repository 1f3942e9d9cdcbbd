//! The `users` table's one home, as `sessions/` is the sessions': every
//! read and write of an account goes through here, so each rule is written
//! once: how a new account is checked and stored, whatever the door
//! (`auth.register`, `gatehouse users create`, the first-admin bootstrap);
//! what a role change or a deletion takes with it; how emails are kept in
//! their normal form.
//!
//! - [`new`]: creating an account ([`RegisterInput`] rules, [`NewAccount`],
//!   [`create_user`], [`CreateUserError`]);
//! - `store`: the table's reads and writes;
//! - `rehash`: a stored hash brought up to the configured cost at login;
//! - `bootstrap`: the first ADMIN from the settings;
//! - [`email_check`]: `gatehouse users check-emails`;
//! - [`admin`]: the `users.*` procedures (ADMIN only).

pub mod admin;
mod bootstrap;
pub mod email_check;
pub mod new;
mod rehash;
mod store;

pub use admin::{
    DeleteUser, DeleteUserInput, ListUsers, ListUsersFields, ListUsersInput, ListUsersOutput,
    SetRole, SetRoleInput,
};
pub(crate) use bootstrap::bootstrap_admin;
pub(crate) use new::insert_row;
pub use new::{CreateUserError, NewAccount, NewUser, RegisterInput, create_user};
pub(crate) use rehash::upgrade_password;
pub(crate) use store::{
    ProfileChanges, admin_exists, find_by_email, find_by_username, set_password_hash,
    update_profile,
};

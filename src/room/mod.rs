//! Matrix room rules, independent of storage and HTTP: room versions,
//! canonical JSON, event hashing and signing, redaction, power levels and
//! the authorization rules.

pub mod auth;
pub mod build;
pub mod cache;
pub mod canonical;
pub mod directory;
pub mod fields;
pub mod forget;
pub mod pdu;
pub mod power_levels;
pub mod redaction;
pub mod relations;
pub mod served;
pub mod target;
#[cfg(test)]
pub(crate) mod testing;
pub mod version;
pub mod visibility;

//! argon2id password hashing, always off the event loop.
//!
//! Parameters: 19 MiB of memory, 2 passes, 1 lane (the OWASP minimum for
//! argon2id). On a Raspberry Pi 4 that is about 0.1 s per hash, on a Zero 2 W
//! about 0.3 s: slow enough to make offline guessing expensive, fast enough
//! for a login, and small enough that the two hashes the server's hash slots
//! allow at once fit a 512 MB board.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use tokio::sync::Semaphore;

use crate::error::MatrixError;

const MEMORY_KIB: u32 = 19 * 1024;
const PASSES: u32 = 2;
const LANES: u32 = 1;

fn hasher() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, PASSES, LANES, None)
        .expect("constant argon2 parameters are within the crate's bounds");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Hashes on the calling thread: for the admin command line and for the
/// blocking pool.
pub fn hash_password_blocking(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| format!("no randomness for a salt: {e}"))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Hashes on the blocking pool, at most one per permit of `slots` at a time.
pub async fn hash_password(slots: &Semaphore, password: String) -> Result<String, MatrixError> {
    let _slot = slots.acquire().await.map_err(|e| MatrixError::internal("hash slots", e))?;
    tokio::task::spawn_blocking(move || hash_password_blocking(&password))
        .await
        .map_err(|e| MatrixError::internal("password hashing task", e))?
        .map_err(|e| MatrixError::internal("password hashing", e))
}

/// Checks `password` against a stored PHC string, off the loop, holding a
/// permit of `slots` as [`hash_password`] does.
pub async fn verify_password(
    slots: &Semaphore,
    password: String,
    stored: String,
) -> Result<bool, MatrixError> {
    let _slot = slots.acquire().await.map_err(|e| MatrixError::internal("hash slots", e))?;
    tokio::task::spawn_blocking(move || {
        let Ok(parsed) = PasswordHash::new(&stored) else { return false };
        // Verify with the parameters stored in the hash, so hashes made with
        // older parameters keep working after a change here.
        Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok()
    })
    .await
    .map_err(|e| MatrixError::internal("password verification task", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_verifies_its_password_and_no_other() {
        let h = hash_password_blocking("correct horse").expect("hash");
        assert!(h.starts_with("$argon2id$"));
        let parsed = PasswordHash::new(&h).expect("phc");
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"battery staple", &parsed).is_err());
    }

    #[test]
    fn two_hashes_of_one_password_differ_by_salt() {
        let a = hash_password_blocking("pw").expect("hash");
        let b = hash_password_blocking("pw").expect("hash");
        assert_ne!(a, b);
    }
}

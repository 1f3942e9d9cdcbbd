//! Password hashing (bcrypt) and the password policy.
//!
//! bcrypt is deliberately slow (tens of milliseconds per hash at the default
//! cost), so running it on the async executor would let a flood of logins
//! starve every other request. [`PasswordHasher`] therefore runs all hashing on
//! tokio's blocking pool, gated by a semaphore with one permit per core: at
//! most that many hashes run at once, the rest wait their turn (FIFO) without
//! holding any thread, and the executor's workers stay free.
//!
//! Passwords are never truncated: bcrypt only reads the first 72 bytes, so a
//! longer password is refused by [`check_password_policy`], by
//! [`PasswordHasher::hash`], and never matches in [`PasswordHasher::verify`].

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, LazyLock};

use tokio::sync::Semaphore;

/// The shortest acceptable password, counted in characters (not bytes) so
/// that non-ASCII passwords are not favoured or penalised.
pub const MIN_PASSWORD_CHARS: usize = 8;

/// The longest acceptable password in bytes: bcrypt ignores everything past
/// 72 bytes, and silently accepting a longer password would make its tail
/// meaningless.
pub const MAX_PASSWORD_BYTES: usize = 72;

/// bcrypt's cost range (the `bcrypt` crate keeps its own constants private).
const MIN_COST: u32 = 4;
const MAX_COST: u32 = 31;

/// Why a password could not be hashed or verified. None of these messages
/// contain the password or the hash, but they are still internal: callers map
/// them to a generic error for clients.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The configured bcrypt cost is outside bcrypt's range.
    #[error("bcrypt cost must be between 4 and 31, got {0}")]
    InvalidCost(u32),
    /// The stored hash is not a bcrypt hash (`$2a$`, `$2b$`, `$2x$`, `$2y$`).
    #[error("the stored password hash is not a valid bcrypt hash")]
    MalformedHash,
    /// The password is longer than bcrypt can use; hashing it would truncate.
    #[error("password is longer than {MAX_PASSWORD_BYTES} bytes ({0} bytes)")]
    TooLong(usize),
    /// The hashing pool has shut down (the runtime is stopping).
    #[error("the password hashing pool is closed")]
    PoolClosed,
    /// A hashing task failed to complete (panicked or was cancelled).
    #[error("a password hashing task failed: {0}")]
    Worker(String),
    /// bcrypt itself failed (e.g. the OS random source for the salt).
    #[error("bcrypt failed: {0}")]
    Bcrypt(#[source] bcrypt::BcryptError),
}

/// The result of checking a password against a stored hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verification {
    /// The password is the one the hash was made from.
    pub matches: bool,
    /// The hash was made with a cost other than the configured one, so it
    /// should be replaced by a fresh hash after a successful login. Only
    /// meaningful when `matches` is true.
    pub needs_rehash: bool,
}

/// Hashes and verifies passwords with bcrypt on a bounded blocking pool.
///
/// Cheap to clone: clones share the pool, so the concurrency bound holds for
/// the whole process.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<Inner>,
}

struct Inner {
    cost: u32,
    /// One permit per concurrent bcrypt computation.
    permits: Arc<Semaphore>,
    workers: usize,
    /// A well-formed hash at the configured cost that no password matches;
    /// see [`PasswordHasher::verify_dummy`].
    dummy_hash: String,
    #[cfg(test)]
    probe: probe::Probe,
}

impl std::fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordHasher")
            .field("cost", &self.inner.cost)
            .field("workers", &self.inner.workers)
            .finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// Creates a hasher for `cost` (4..=31) whose pool runs as many hashes at
    /// once as the machine has cores: more would only make each one slower.
    pub fn new(cost: u32) -> Result<Self, PasswordError> {
        let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
        Self::with_workers(cost, workers)
    }

    /// Like [`PasswordHasher::new`] with an explicit concurrency bound
    /// (at least 1), for deployments that want to keep cores for other work.
    pub fn with_workers(cost: u32, workers: usize) -> Result<Self, PasswordError> {
        if !(MIN_COST..=MAX_COST).contains(&cost) {
            return Err(PasswordError::InvalidCost(cost));
        }
        let workers = workers.max(1);
        Ok(Self {
            inner: Arc::new(Inner {
                cost,
                permits: Arc::new(Semaphore::new(workers)),
                workers,
                dummy_hash: make_dummy_hash(cost)?,
                #[cfg(test)]
                probe: probe::Probe::default(),
            }),
        })
    }

    /// The configured bcrypt cost (work factor is 2^cost).
    pub fn cost(&self) -> u32 {
        self.inner.cost
    }

    /// How many hashes may run at the same time.
    pub fn workers(&self) -> usize {
        self.inner.workers
    }

    /// Hashes `password` with a fresh random salt at the configured cost,
    /// giving a `$2b$` hash. Refuses passwords over [`MAX_PASSWORD_BYTES`]
    /// instead of truncating them.
    pub async fn hash(&self, password: &str) -> Result<String, PasswordError> {
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordError::TooLong(password.len()));
        }
        let password = password.to_owned();
        let cost = self.inner.cost;
        // The length was checked above, so bcrypt's own (truncating) entry
        // point hashes the whole password. Its `non_truncating_*` variants
        // would also refuse exactly 72 bytes, which bcrypt handles fully.
        self.run(move || bcrypt::hash(password.as_bytes(), cost))
            .await?
            .map_err(PasswordError::Bcrypt)
    }

    /// Checks `password` against a stored bcrypt hash (`$2a$`, `$2b$`, `$2x$`,
    /// `$2y$` — as written by Node's bcrypt/bcryptjs or PHP/Laravel).
    ///
    /// A password over [`MAX_PASSWORD_BYTES`] never matches (it is refused,
    /// not truncated), without spending any hashing time: the refusal depends
    /// only on the password, so it reveals nothing about the account.
    /// A hash that is not a bcrypt hash gives [`PasswordError::MalformedHash`].
    pub async fn verify(&self, password: &str, hash: &str) -> Result<Verification, PasswordError> {
        let parts: bcrypt::HashParts = hash.parse().map_err(|_| PasswordError::MalformedHash)?;
        let hash_cost = parts.get_cost();
        if !(MIN_COST..=MAX_COST).contains(&hash_cost) {
            return Err(PasswordError::MalformedHash);
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Ok(Verification {
                matches: false,
                needs_rehash: false,
            });
        }
        let password = password.to_owned();
        let hash = hash.to_owned();
        let matches =
            self.run(move || bcrypt::verify(password.as_bytes(), &hash))
                .await?
                .map_err(|err| match err {
                    bcrypt::BcryptError::InvalidHash(_)
                    | bcrypt::BcryptError::CostNotAllowed(_) => PasswordError::MalformedHash,
                    other => PasswordError::Bcrypt(other),
                })?;
        Ok(Verification {
            matches,
            needs_rehash: hash_cost != self.inner.cost,
        })
    }

    /// Does the work of a real [`PasswordHasher::verify`] at the configured
    /// cost and throws the result away. Called for unknown emails so that a
    /// login for an unknown account takes as long as one with a wrong
    /// password, which keeps response times from telling which emails exist.
    pub async fn verify_dummy(&self, password: &str) {
        // Mirrors `verify`: the same parse, the same early refusal of long
        // passwords, the same queueing and the same bcrypt work.
        let result = self.verify(password, &self.inner.dummy_hash).await;
        if let Err(err) = result {
            tracing::warn!(error = %err, "dummy password verification failed");
        }
    }

    /// Runs `work` on the blocking pool once a permit is free.
    ///
    /// The permit moves into the blocking closure, so it is released only
    /// when the computation really ends — even if the caller's future was
    /// dropped meanwhile (client gone, request timed out). That keeps the
    /// bound true under floods of abandoned requests.
    async fn run<T, F>(&self, work: F) -> Result<T, PasswordError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = Arc::clone(&self.inner.permits)
            .acquire_owned()
            .await
            .map_err(|_| PasswordError::PoolClosed)?;
        #[cfg(test)]
        let probe = self.inner.probe.clone();
        tokio::task::spawn_blocking(move || {
            #[cfg(test)]
            let busy = probe.enter();
            let out = work();
            #[cfg(test)]
            drop(busy);
            drop(permit);
            out
        })
        .await
        .map_err(|err| {
            if err.is_cancelled() {
                PasswordError::PoolClosed
            } else {
                PasswordError::Worker(err.to_string())
            }
        })
    }

    #[cfg(test)]
    fn dummy_hash(&self) -> &str {
        &self.inner.dummy_hash
    }
}

/// Builds a hash that costs exactly as much to verify as a real one at
/// `cost`, without paying for it now: a real hash of a random secret is made
/// at the cheapest cost and its cost field is rewritten. Verifying against it
/// runs bcrypt at `cost` with its salt (the work depends only on the cost),
/// and no password can match because the digest belongs to cost 4. This keeps
/// construction instant even for high costs.
fn make_dummy_hash(cost: u32) -> Result<String, PasswordError> {
    let secret = uuid::Uuid::new_v4();
    let cheap = bcrypt::hash(secret.as_bytes(), MIN_COST).map_err(PasswordError::Bcrypt)?;
    // A bcrypt hash is `$2b$NN$<53 chars>`; the cost is bytes 4..6.
    match (cheap.get(..4), cheap.get(6..)) {
        (Some(prefix), Some(rest)) => Ok(format!("{prefix}{cost:02}{rest}")),
        _ => Err(PasswordError::MalformedHash),
    }
}

/// Why a new password is refused. The messages are user-facing (English).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("Password must be at least 8 characters long")]
    TooShort,
    /// More than [`MAX_PASSWORD_BYTES`] bytes.
    #[error("Password must be at most 72 bytes long")]
    TooLong,
    /// One of the 10 000 most common passwords (compared case-insensitively).
    #[error("Password is too common")]
    TooCommon,
}

/// The list ships inside the binary so the policy never depends on files
/// next to it at run time.
const COMMON_PASSWORDS_TXT: &str = include_str!("../data/common-passwords.txt");

/// The common passwords, lower-cased, parsed once on first use.
static COMMON_PASSWORDS: LazyLock<HashSet<String>> = LazyLock::new(|| {
    COMMON_PASSWORDS_TXT
        .lines()
        .map(|line| line.trim_end_matches('\r'))
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

/// Checks a new password against the policy in `docs/api.md#passwords`: at least 8
/// characters, at most 72 bytes (bcrypt's limit, never truncated silently),
/// and not one of the 10 000 most common passwords (case-insensitively, so
/// `Password` is as refused as `password`).
pub fn check_password_policy(password: &str) -> Result<(), PasswordPolicyError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(PasswordPolicyError::TooShort);
    }
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(PasswordPolicyError::TooLong);
    }
    if COMMON_PASSWORDS.contains(&password.to_lowercase()) {
        return Err(PasswordPolicyError::TooCommon);
    }
    Ok(())
}

/// Test-only instrumentation: how many bcrypt computations run at once.
#[cfg(test)]
mod probe {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[derive(Clone, Default)]
    pub(super) struct Probe {
        busy: Arc<AtomicUsize>,
        peak: Arc<AtomicUsize>,
        done: Arc<AtomicUsize>,
    }

    pub(super) struct Busy(Probe);

    impl Probe {
        pub(super) fn enter(&self) -> Busy {
            let now = self.busy.fetch_add(1, Ordering::SeqCst) + 1;
            self.peak.fetch_max(now, Ordering::SeqCst);
            Busy(self.clone())
        }
        pub(super) fn peak(&self) -> usize {
            self.peak.load(Ordering::SeqCst)
        }
        pub(super) fn done(&self) -> usize {
            self.done.load(Ordering::SeqCst)
        }
    }

    impl Drop for Busy {
        fn drop(&mut self) {
            self.0.busy.fetch_sub(1, Ordering::SeqCst);
            self.0.done.fetch_add(1, Ordering::SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    #[derive(serde::Deserialize)]
    struct Fixture {
        plaintext: String,
        hash: String,
        origin: String,
    }

    fn fixtures() -> Vec<Fixture> {
        serde_json::from_str(include_str!("../tests/fixtures/bcrypt-hashes.json")).unwrap()
    }

    #[test]
    fn cost_out_of_range_is_refused() {
        assert!(matches!(
            PasswordHasher::new(3),
            Err(PasswordError::InvalidCost(3))
        ));
        assert!(matches!(
            PasswordHasher::new(32),
            Err(PasswordError::InvalidCost(32))
        ));
        assert_eq!(PasswordHasher::new(4).unwrap().cost(), 4);
        // Construction must not pay for the cost (the dummy hash is cheap).
        assert_eq!(PasswordHasher::new(31).unwrap().cost(), 31);
        let workers = std::thread::available_parallelism().unwrap().get();
        assert_eq!(PasswordHasher::new(4).unwrap().workers(), workers);
    }

    #[tokio::test]
    async fn hash_then_verify_round_trips() {
        let hasher = PasswordHasher::new(4).unwrap();
        let hash = hasher.hash("a fine passphrase").await.unwrap();
        assert!(hash.starts_with("$2b$04$"), "{hash}");
        let ok = hasher.verify("a fine passphrase", &hash).await.unwrap();
        assert_eq!(
            ok,
            Verification {
                matches: true,
                needs_rehash: false
            }
        );
        let wrong = hasher.verify("a fine passphrasE", &hash).await.unwrap();
        assert!(!wrong.matches);
        // Fresh salt each time.
        assert_ne!(hash, hasher.hash("a fine passphrase").await.unwrap());
    }

    #[tokio::test]
    async fn foreign_hashes_verify() {
        let fixtures = fixtures();
        for prefix in ["$2a$", "$2b$", "$2y$"] {
            assert!(
                fixtures.iter().any(|f| f.hash.starts_with(prefix)),
                "no {prefix} fixture"
            );
        }
        let hasher = PasswordHasher::new(10).unwrap();
        for f in &fixtures {
            let v = hasher.verify(&f.plaintext, &f.hash).await.unwrap();
            assert!(v.matches, "{} ({}) did not verify", f.hash, f.origin);
            let cost: u32 = f.hash[4..6].parse().unwrap();
            assert_eq!(v.needs_rehash, cost != 10, "{}", f.hash);
            let mut wrong = f.plaintext.clone();
            wrong.push('!');
            if wrong.len() <= MAX_PASSWORD_BYTES {
                let v = hasher.verify(&wrong, &f.hash).await.unwrap();
                assert!(!v.matches, "{} matched a wrong password", f.hash);
            }
        }
    }

    #[tokio::test]
    async fn needs_rehash_follows_the_configured_cost() {
        let cheap = PasswordHasher::new(4).unwrap();
        let dearer = PasswordHasher::new(5).unwrap();
        let hash = cheap.hash("rehash me please").await.unwrap();
        let v = dearer.verify("rehash me please", &hash).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: true,
                needs_rehash: true
            }
        );
        let rehashed = dearer.hash("rehash me please").await.unwrap();
        let v = dearer.verify("rehash me please", &rehashed).await.unwrap();
        assert!(v.matches && !v.needs_rehash);
    }

    #[tokio::test]
    async fn never_truncates() {
        let hasher = PasswordHasher::new(4).unwrap();
        let at_limit = "é".repeat(36); // 72 bytes, 36 chars
        assert_eq!(at_limit.len(), MAX_PASSWORD_BYTES);
        let hash = hasher.hash(&at_limit).await.unwrap();
        assert!(hasher.verify(&at_limit, &hash).await.unwrap().matches);

        let over = format!("{at_limit}x");
        assert!(matches!(
            hasher.hash(&over).await,
            Err(PasswordError::TooLong(73))
        ));
        // A truncating verifier would accept `over` against `hash`.
        assert!(!hasher.verify(&over, &hash).await.unwrap().matches);
        // The same for a 72-byte hash made by Node's bcrypt.
        let node72 = fixtures()
            .into_iter()
            .find(|f| f.plaintext.len() == MAX_PASSWORD_BYTES)
            .unwrap();
        assert!(
            hasher
                .verify(&node72.plaintext, &node72.hash)
                .await
                .unwrap()
                .matches
        );
        let longer = format!("{}zz", node72.plaintext);
        assert!(!hasher.verify(&longer, &node72.hash).await.unwrap().matches);
    }

    #[tokio::test]
    async fn malformed_hashes_are_errors_not_panics() {
        let hasher = PasswordHasher::new(4).unwrap();
        let good = hasher.hash("some password").await.unwrap();
        let mut bad: Vec<String> = vec![
            String::new(),
            "plaintext".into(),
            "$2b$".into(),
            "$argon2id$v=19$m=65536,t=3,p=4$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG".into(),
            good[..59].to_string(),
            format!("{good}x"),
            good.replace("$2b$", "$3b$"),
            good.replacen("$04$", "$03$", 1),
            good.replacen("$04$", "$aa$", 1),
            format!("{}é{}", &good[..58], &good[59..]),
        ];
        // Multi-byte character straddling the slicing points of the parser.
        bad.push(format!("$2b$0é{}", &good[7..59]));
        for h in &bad {
            let res = hasher.verify("some password", h).await;
            assert!(
                matches!(res, Err(PasswordError::MalformedHash)),
                "{h:?}: {res:?}"
            );
        }
        // A malformed hash never makes verify_dummy panic either.
        hasher.verify_dummy("some password").await;
    }

    #[tokio::test]
    async fn dummy_hash_costs_the_configured_cost_and_never_matches() {
        let hasher = PasswordHasher::new(6).unwrap();
        let dummy = hasher.dummy_hash().to_owned();
        assert!(dummy.starts_with("$2b$06$"), "{dummy}");
        let v = hasher.verify("anything at all", &dummy).await.unwrap();
        assert_eq!(
            v,
            Verification {
                matches: false,
                needs_rehash: false
            }
        );
        let before = hasher.inner.probe.done();
        hasher.verify_dummy("anything at all").await;
        // It really ran one bcrypt computation on the pool.
        assert_eq!(hasher.inner.probe.done(), before + 1);
    }

    /// While a flood of verifications (several per core, cost 10) is being
    /// worked off, a timer task on the same single-threaded runtime keeps
    /// ticking. If bcrypt ran on the executor, the ticker could not advance
    /// until the flood was over.
    #[tokio::test(flavor = "current_thread")]
    async fn a_flood_of_verifications_does_not_stall_the_executor() {
        let hasher = PasswordHasher::new(10).unwrap();
        let hash = hasher.hash("flood password").await.unwrap();
        let n = hasher.workers() * 4;

        let flood_done = Arc::new(AtomicBool::new(false));
        let flood = {
            let hasher = hasher.clone();
            let hash = hash.clone();
            let flood_done = Arc::clone(&flood_done);
            tokio::spawn(async move {
                let mut tasks = tokio::task::JoinSet::new();
                for i in 0..n {
                    let hasher = hasher.clone();
                    let hash = hash.clone();
                    tasks.spawn(async move {
                        let pw = if i % 2 == 0 { "flood password" } else { "nope" };
                        hasher.verify(pw, &hash).await.unwrap().matches == (i % 2 == 0)
                    });
                }
                let mut all_right = true;
                while let Some(res) = tasks.join_next().await {
                    all_right &= res.unwrap();
                }
                flood_done.store(true, Ordering::SeqCst);
                all_right
            })
        };

        // Let the flood start, then tick.
        tokio::task::yield_now().await;
        let ticks = Arc::new(AtomicUsize::new(0));
        let mut ticks_before_flood_end = 0;
        for _ in 0..5 {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
            ticks.fetch_add(1, Ordering::SeqCst);
            if !flood_done.load(Ordering::SeqCst) {
                ticks_before_flood_end += 1;
            }
        }
        assert!(flood.await.unwrap(), "a verification gave a wrong result");
        assert_eq!(
            ticks_before_flood_end, 5,
            "the executor was stalled by the hashing flood"
        );
        let peak = hasher.inner.probe.peak();
        assert!(
            (1..=hasher.workers()).contains(&peak),
            "{peak} hashes ran at once with {} workers",
            hasher.workers()
        );
        assert_eq!(hasher.inner.probe.done(), n + 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_pool_bound_holds_with_more_work_than_workers() {
        let hasher = PasswordHasher::with_workers(6, 1).unwrap();
        let hash = hasher.hash("bounded").await.unwrap();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..6 {
            let hasher = hasher.clone();
            let hash = hash.clone();
            tasks.spawn(async move { hasher.verify("bounded", &hash).await.unwrap().matches });
        }
        while let Some(res) = tasks.join_next().await {
            assert!(res.unwrap());
        }
        assert_eq!(hasher.inner.probe.peak(), 1);
    }

    #[test]
    fn policy_refuses_common_passwords() {
        for pw in [
            "password",
            "123456789",
            "qwertyuiop",
            "PassWord",
            "QWERTYUIOP",
        ] {
            assert_eq!(
                check_password_policy(pw),
                Err(PasswordPolicyError::TooCommon),
                "{pw}"
            );
        }
        assert!(COMMON_PASSWORDS.len() > 9_000, "{}", COMMON_PASSWORDS.len());
        assert!(!COMMON_PASSWORDS.iter().any(|p| p.starts_with('#')));
    }

    #[test]
    fn policy_length_limits() {
        assert_eq!(
            check_password_policy("kT9#vq2"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(
            check_password_policy(""),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(check_password_policy("kT9#vq2!"), Ok(()));
        // 7 two-byte characters are 14 bytes but still 7 characters.
        assert_eq!(
            check_password_policy("ñéüßøåç"),
            Err(PasswordPolicyError::TooShort)
        );
        assert_eq!(check_password_policy("ñéüßøåçæ"), Ok(()));
        assert_eq!(check_password_policy(&"é".repeat(36)), Ok(()));
        assert_eq!(
            check_password_policy(&"a".repeat(73)),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_password_policy(&format!("{}x", "é".repeat(36))),
            Err(PasswordPolicyError::TooLong)
        );
        assert_eq!(
            check_password_policy("v7R!pQ2#mZ9xL4@wK8sN3&dF6hJ1"),
            Ok(())
        );
    }
}

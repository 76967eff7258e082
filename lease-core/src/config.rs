//! Engine settings.

use std::time::Duration;

use crate::error::ValidationError;

/// Longest accepted duration setting, so time arithmetic cannot overflow.
const MAX_SETTING: Duration = Duration::from_secs(365 * 24 * 3600);
/// Most quick removal retries accepted.
const MAX_QUICK_RETRIES: u32 = 10;

/// How the engine behaves. `Default` gives the documented defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManagerConfig {
    /// This deployment's namespace label value; containers of other
    /// namespaces are never touched. 1-63 lowercase letters, digits, `-`.
    pub namespace: String,
    /// Longest lifetime of any lease, extensions included, in minutes; an
    /// offering's own `max_minutes` can only lower it. Default 480.
    pub max_minutes: u32,
    /// A pending lease not running after this becomes `error`. Default 10 min.
    pub provision_timeout: Duration,
    /// A created container (unit) not running after this fails its lease
    /// (or pool slot) with the runtime's reason, e.g. a cluster with no
    /// suitable node; it is then removed. The provisioning timeout bounds
    /// it too. Default 2 min.
    pub placement_timeout: Duration,
    /// A pending lease with no provisioning task in this process is retried
    /// after this. Default 30 s.
    pub stuck_pending_after: Duration,
    /// The reaper wakes at least this often. Default 60 s.
    pub sweep_interval: Duration,
    /// How long a reaper's claim on a due lease lasts before another reaper
    /// may take it. Default 60 s.
    pub claim_ttl: Duration,
    /// Most leases claimed in one batch. Default 256.
    pub reap_batch: usize,
    /// Most container removals in flight at once. Default 16.
    pub max_concurrent_removals: usize,
    /// Quick retries of a failing removal before waiting for the next sweep. Default 3.
    pub quick_retries: u32,
    /// First quick-retry delay, doubled each time. Default 200 ms.
    pub quick_retry_base: Duration,
    /// How long before expiry the `expiring_soon` event fires. Default 5 min.
    pub expiring_soon_lead: Duration,
    /// How often the reconciler runs after start-up. Default 5 min.
    pub reconcile_interval: Duration,
    /// What the reconciler does with a labelled container whose lease the
    /// store has never heard of. Default [`OrphanPolicy::Adopt`].
    pub orphan_policy: OrphanPolicy,
    /// Most active (not yet finished) leases one owner may hold; `None`: no limit.
    pub max_leases_per_owner: Option<u32>,
    /// Most estimated spend per owner per UTC day (leases created that day,
    /// at their estimate, or their final cost once ended); `None`: no limit.
    pub max_daily_spend: Option<crate::Money>,
    /// Most active leases of all owners together (the host); `None`: no limit.
    pub max_leases: Option<u32>,
    /// Most CPUs the active leases may reserve together, in nano-CPUs
    /// (their offerings' `cpus`); `None`: no limit.
    pub max_nano_cpus: Option<i64>,
    /// Most memory the active leases may reserve together, in MiB (their
    /// offerings' `memory_mb`); `None`: no limit.
    pub max_memory_mb: Option<u64>,
    /// A ready warm-pool container older than this is replaced (so pools
    /// do not keep containers of a long-gone moment). Default 1 h.
    pub pool_max_age: Duration,
    /// How often the pool filler checks every pool's size when nothing
    /// wakes it (a take wakes it at once). Default 5 s.
    pub pool_check_interval: Duration,
}

/// What to do with a labelled container whose lease is unknown to the store
/// (neither active nor in history) — typically after the memory store lost
/// its state in a restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// Rebuild the lease from the container's labels (owner, offering,
    /// created-at, expires-at) so it runs out its time and is billed; remove
    /// the container if its labels are incomplete.
    Adopt,
    /// Remove the container.
    Remove,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        ManagerConfig {
            namespace: "default".into(),
            max_minutes: crate::catalog::DEFAULT_MAX_MINUTES,
            provision_timeout: Duration::from_secs(600),
            placement_timeout: Duration::from_secs(120),
            stuck_pending_after: Duration::from_secs(30),
            sweep_interval: Duration::from_secs(60),
            claim_ttl: Duration::from_secs(60),
            reap_batch: 256,
            max_concurrent_removals: 16,
            quick_retries: 3,
            quick_retry_base: Duration::from_millis(200),
            expiring_soon_lead: Duration::from_secs(300),
            reconcile_interval: Duration::from_secs(300),
            orphan_policy: OrphanPolicy::Adopt,
            max_leases_per_owner: None,
            max_daily_spend: None,
            max_leases: None,
            max_nano_cpus: None,
            max_memory_mb: None,
            pool_max_age: Duration::from_secs(3600),
            pool_check_interval: Duration::from_secs(5),
        }
    }
}

impl ManagerConfig {
    /// The defaults with `namespace`.
    pub fn with_namespace(namespace: impl Into<String>) -> Self {
        ManagerConfig {
            namespace: namespace.into(),
            ..ManagerConfig::default()
        }
    }

    /// Checks the settings.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_namespace(&self.namespace)?;
        if self.max_minutes == 0 {
            return Err(ValidationError::new("max_minutes", "must be at least 1"));
        }
        if self.reap_batch == 0 || self.max_concurrent_removals == 0 {
            return Err(ValidationError::new(
                "reap_batch",
                "batch and concurrency must be at least 1",
            ));
        }
        if self.sweep_interval.is_zero() || self.claim_ttl.is_zero() {
            return Err(ValidationError::new(
                "sweep_interval",
                "sweep interval and claim ttl must be above zero",
            ));
        }
        let durations = [
            ("provision_timeout", self.provision_timeout),
            ("placement_timeout", self.placement_timeout),
            ("stuck_pending_after", self.stuck_pending_after),
            ("sweep_interval", self.sweep_interval),
            ("claim_ttl", self.claim_ttl),
            ("quick_retry_base", self.quick_retry_base),
            ("expiring_soon_lead", self.expiring_soon_lead),
            ("reconcile_interval", self.reconcile_interval),
            ("pool_max_age", self.pool_max_age),
            ("pool_check_interval", self.pool_check_interval),
        ];
        if let Some((field, _)) = durations.iter().find(|(_, d)| *d > MAX_SETTING) {
            return Err(ValidationError::new(field, "must be at most 365 days"));
        }
        if self.pool_max_age.is_zero() || self.pool_check_interval.is_zero() {
            return Err(ValidationError::new(
                "pool_max_age",
                "pool max age and check interval must be above zero",
            ));
        }
        if self.max_nano_cpus.is_some_and(|nano_cpus| nano_cpus < 0) {
            return Err(ValidationError::new("max_cpus", "must not be negative"));
        }
        if self.quick_retries > MAX_QUICK_RETRIES {
            return Err(ValidationError::new(
                "quick_retries",
                format!("must be at most {MAX_QUICK_RETRIES}"),
            ));
        }
        Ok(())
    }
}

/// Checks a namespace: 1-63 lowercase ASCII letters, digits or `-`.
pub fn validate_namespace(namespace: &str) -> Result<(), ValidationError> {
    let ok = !namespace.is_empty()
        && namespace.len() <= 63
        && namespace
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            "namespace",
            format!("`{namespace}` must be 1-63 lowercase letters, digits or `-`"),
        ))
    }
}

//! The cache tier that served a request, noted by the service as it finds
//! out and read by the audit line afterwards.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

/// Where a served file came from, noted by the service as it finds out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Tier {
    Unknown = 0,
    Memory = 1,
    Storage = 2,
    Upstream = 3,
    /// The local disk tier for zips.
    Disk = 4,
    /// Memory, found under the request's own path before it was parsed:
    /// the path is then a version file's storage key, its canonical form.
    MemoryByPath = 5,
}

impl Tier {
    fn label(v: u8) -> &'static str {
        match v {
            1 | 5 => "memory",
            2 => "storage",
            3 => "upstream",
            4 => "disk",
            _ => "joined",
        }
    }
}

/// The tier slot of one request.
pub type TierSlot = Arc<AtomicU8>;

tokio::task_local! {
    static TIER: TierSlot;
}

/// Notes the tier of the current request, if it is being audited.
pub fn note_tier(tier: Tier) {
    let _ = TIER.try_with(|t| t.store(tier as u8, Ordering::Relaxed));
}

/// The current request's slot, to carry into a spawned fetch.
pub fn current_tier() -> Option<TierSlot> {
    TIER.try_with(Arc::clone).ok()
}

/// `fut` with `slot` as its tier slot (no slot: unaudited). Not an
/// `async fn`, which would hold `fut` twice.
pub fn with_tier<F: std::future::Future>(
    slot: Option<TierSlot>,
    fut: F,
) -> impl std::future::Future<Output = F::Output> {
    match slot {
        Some(slot) => futures::future::Either::Left(TIER.scope(slot, fut)),
        None => futures::future::Either::Right(fut),
    }
}

/// Whether the memory cache answered under the request's own path
/// ([`Tier::MemoryByPath`]).
pub fn by_path(slot: &TierSlot) -> bool {
    slot.load(Ordering::Relaxed) == Tier::MemoryByPath as u8
}

/// Reads a slot's tier label.
pub fn tier_label(slot: &TierSlot) -> &'static str {
    Tier::label(slot.load(Ordering::Relaxed))
}

//! The cache tier that served a request, noted by the service as it finds
//! out and read by the audit line afterwards.

use std::sync::Arc;
use std::sync::atomic::AtomicU8;

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
    /// The tier a slot holds (what no note set reads as unknown).
    pub fn from_slot(v: u8) -> Tier {
        match v {
            1 => Tier::Memory,
            2 => Tier::Storage,
            3 => Tier::Upstream,
            4 => Tier::Disk,
            5 => Tier::MemoryByPath,
            _ => Tier::Unknown,
        }
    }

    /// The audit line's word: an unknown tier means the request waited on
    /// another's fetch.
    pub fn label(self) -> &'static str {
        match self {
            Tier::Memory | Tier::MemoryByPath => "memory",
            Tier::Storage => "storage",
            Tier::Upstream => "upstream",
            Tier::Disk => "disk",
            Tier::Unknown => "joined",
        }
    }

    /// Whether the memory cache answered under the request's own path
    /// ([`Tier::MemoryByPath`]).
    pub fn by_path(self) -> bool {
        self == Tier::MemoryByPath
    }
}

/// The tier slot of one request.
pub type TierSlot = Arc<AtomicU8>;

/// Notes the tier of the current request, if it is being audited (the
/// slot travels in the request's scope: [`crate::reqid::scope`]).
pub fn note_tier(tier: Tier) {
    crate::reqid::note_tier(tier);
}

//! Byte ranges of stored zips: parsed and resolved by [`sparta_core::range`].

pub use sparta_core::range::RangeRequest;

//! Keywarden's benchmark tools: the load generator (`keywarden-loadgen`), the side-by-side
//! comparison of its runs (`keywarden-bench-compare`) and the revocation-propagation probe
//! of a cluster (`keywarden-propagation`).

pub mod client;
pub mod compare;
pub mod cpu;
pub mod health;
pub mod phase;
pub mod propagation;
pub mod report;
pub mod runner;
pub mod setup;
pub mod summary;

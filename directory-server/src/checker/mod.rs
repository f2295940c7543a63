//! Checking recorded histories (feature `checker`, host only): [`lin`] decides
//! whether a history of calls is linearizable against a sequential
//! specification; [`spec`] is the specification of the [`crate::workload`]'s
//! directory calls, and [`files`] that of files by path (`put`, `get`, `rm`).
//! The simulation and the pool tests use them.

pub mod files;
pub mod lin;
pub mod spec;

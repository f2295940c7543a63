//! Checking recorded histories (feature `checker`, host only): [`lin`] decides
//! whether a history of calls is linearizable against a sequential
//! specification, and [`spec`] is the specification of the
//! [`crate::workload`]'s calls. The simulation and the pool tests both use them.

pub mod lin;
pub mod spec;

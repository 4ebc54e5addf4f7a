//! confine: run a command (usually an AI agent) under least privilege that the
//! Linux kernel enforces.
//!
//! Data flows one way: text -> [`profile::Profile`] -> [`plan::Plan`] ->
//! enforcement ([`sandbox`]) -> exec, with the supervisor in [`launch`]
//! watching from outside. See DESIGN.md for the contract.

// Messages go through `out`: std's print macros panic on a closed pipe.
#![cfg_attr(not(test), deny(clippy::print_stderr, clippy::print_stdout))]

pub mod audit;
pub mod changes;
pub mod control;
pub mod denials;
pub mod egress;
pub mod families;
pub mod files;
pub mod host_sockets;
pub mod launch;
pub mod learn;
pub mod out;
pub mod plan;
pub mod probe;
pub mod procfs;
pub mod profile;
pub mod sandbox;
pub mod state;
pub mod syscalls;

/// In the crate's own tests, an allocation on the agent's path between its
/// clone and its execve aborts ([`launch::agent`]).
#[cfg(test)]
#[global_allocator]
static ALLOC: launch::agent::no_alloc::Guard = launch::agent::no_alloc::Guard;

//! One module per kernel mechanism. Each applies its part of a plan and knows
//! nothing of YAML: inputs are plain data decided before any of them runs.

pub mod caps;
pub mod cgroup;
pub mod env;
pub mod fsfd;
pub mod home;
pub mod landlock;
pub mod limits;
pub mod listeners;
pub mod memfd;
pub mod mounts;
pub mod namespaces;
pub mod placeholders;
pub mod process;
pub mod pty;
pub mod runtime_dir;
pub mod seccomp;
pub mod secrets;
pub mod user;

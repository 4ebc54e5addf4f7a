//! placeholder: cgroup limits (being written)

//! Where configuration comes from. Everything here does I/O; everything it produces is handed to
//! the pure pipeline (`model` → `compile` → `xds`).

pub mod config_dir;
pub mod files;
pub mod kubernetes;

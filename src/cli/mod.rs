//! The flag table (one definition per flag; it generates `--help`), argument parsing and
//! subcommands.
//!
//! Must not touch: business logic.

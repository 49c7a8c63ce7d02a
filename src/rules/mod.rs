//! Recording and alerting rules.
//!
//! Owns: rule-file loading and validation (`file`), the Go template subset used in labels and
//! annotations (`template`, `gofmt`), group evaluation and alert state (`group`), and
//! promtool's rule unit tests (`unittest`). Must not touch: the engine type (queries go
//! through `QueryFn`), notify internals (alerts leave through `NotifyFn`).

pub mod file;
pub mod gofmt;
pub mod template;

pub use file::{GroupDef, RuleDef, RuleError, RuleFile, RuleKind};
pub mod backend;
pub mod group;

pub use backend::EngineBackend;
pub use group::{Alert, AlertState, EvalContext, Group, NotifyFn, OutgoingAlert, RuleBackend};
pub mod manager;
pub mod notation;
pub mod unittest;
pub use manager::Manager;
pub mod api;

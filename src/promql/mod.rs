//! PromQL: lexer, parser (AST with byte positions) and evaluation engine.
//!
//! Owns: the language and its evaluation limits. Reads data only through the TSDB query interface.
//! Must not touch: TSDB internals, HTTP.

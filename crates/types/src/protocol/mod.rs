pub mod bootstrap;
pub mod control;
pub mod file_ops;
pub mod framing;
pub mod gateway;
pub mod shell;

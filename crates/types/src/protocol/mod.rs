pub mod bootstrap;
pub mod framing;
pub mod gateway;
pub mod shell;

#![forbid(unsafe_code)]
pub mod chat;

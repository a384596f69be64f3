//! Integration tests: they drive the real `spendql` binary and the real wire protocol.

mod cli;
mod common;
mod durability;
mod providers;
mod wire;

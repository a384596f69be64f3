//! Integration tests: they drive the real `spendql` binary and the real wire protocol.

mod alerts;
mod auth;
mod catalog;
mod cli;
mod clients;
mod common;
mod copy;
mod corpora;
mod durability;
mod otlp;
mod providers;
mod reports;
mod stored_costs;
mod wire;

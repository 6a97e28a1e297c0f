//! Weir's sinks: they deliver records to files, the console and (later) SIEMs, ticketing, chat
//! and partners' webhooks.
//!
//! Every sink implements [`weir_schemas::component::Sink`]: it returns once the destination has
//! acknowledged the batch, naming any record that failed and whether trying again may help. One
//! folder per sink, the same files in each: `config.rs`, `sink.rs`, `tests.rs`; shared encoding
//! lives in [`encoding`], and the HTTP delivery every HTTP sink shares (client, gzip, rate limit,
//! circuit breaker, response classification, [`http::Secret`]) in [`http`]; the message templates of
//! the chat and ticketing sinks (`title_template`, `body_template`) in [`template`].

pub mod chat;
pub mod console;
pub mod encoding;
pub mod file;
pub mod http;
pub mod recent;
pub mod siem;
pub mod template;
pub mod ticketing;
pub mod webhook;

#[cfg(test)]
mod test_support;

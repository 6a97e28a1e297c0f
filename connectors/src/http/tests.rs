//! Tests of the shared HTTP machinery (the connectors' own tests use it against fake servers).

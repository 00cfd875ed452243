//! Talking RESP to redis and sentinel (redis crate). Parsing of replies is pure and lives in
//! `parse`; this module owns connections and timeouts.

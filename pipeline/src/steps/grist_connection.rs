//! The Grist connection settings every Grist step takes, read the same way everywhere:
//! `server_url`, `api_key` (a secret: never in the fingerprint or a message) and `timeout_secs`.

use std::time::Duration;

use etl_core::config::Settings;
use grist::{GristClient, GristConfig};

pub fn client(settings: &mut Settings) -> GristClient {
    let server_url = settings.runtime_string("server_url").unwrap_or_default();
    let api_key = settings.secret("api_key");
    let timeout = settings.runtime_u64_or("timeout_secs", 60);
    let mut config = GristConfig::new(&server_url, api_key);
    config.timeout = Duration::from_secs(timeout.max(1));
    GristClient::new(config).expect("an HTTP client with default TLS always builds")
}

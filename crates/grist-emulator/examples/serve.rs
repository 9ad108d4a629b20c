//! Serves doc folders until Ctrl-C: `cargo run -p grist-emulator --example serve -- DIR...`.
//! `GRIST_EMULATOR_ADDR` sets the address (default `127.0.0.1:8484`), `GRIST_API_KEY` a key.

use std::net::SocketAddr;

use grist_emulator::Emulator;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dirs: Vec<String> = std::env::args().skip(1).collect();
    let addr: SocketAddr = std::env::var("GRIST_EMULATOR_ADDR")
        .unwrap_or_else(|_| "127.0.0.1:8484".into())
        .parse()?;
    let key = std::env::var("GRIST_API_KEY").ok();
    let emulator = Emulator::from_dirs(&dirs)?.with_api_key(key.as_deref());
    let running = emulator.serve(addr).await?;
    println!(
        "serving {} docs at {}",
        running.docs().doc_ids().len(),
        running.url()
    );
    tokio::signal::ctrl_c().await?;
    running.shutdown().await;
    Ok(())
}

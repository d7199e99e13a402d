//! The demo estate without the rest of medic: `cargo run -p medic-demo --example demo --
//! demo-estate --dir /tmp/estate`. Same subcommands as the `medic` binary's hidden ones, so
//! the estate can re-execute this binary as its services.

use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    DemoService(medic_demo::service::DemoServiceArgs),
    DemoEstate(medic_demo::estate::EstateArgs),
}

#[tokio::main]
async fn main() {
    let result = match Cli::parse().command {
        Command::DemoService(a) => medic_demo::service::run(a).await,
        Command::DemoEstate(a) => medic_demo::estate::run(a).await,
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

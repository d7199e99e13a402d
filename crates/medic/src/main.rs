//! `medic`: the agent, the CLI and the demo, in one binary.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "medic", version, about = "A self-healing agent for cloud estates")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run one demo service process (started by the demo estate's supervisor).
    #[command(hide = true)]
    DemoService(medic_demo::service::DemoServiceArgs),
    /// Run the demo estate: supervisor, services, load generator, fault injector.
    #[command(hide = true)]
    DemoEstate(medic_demo::estate::EstateArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::DemoService(args) => medic_demo::service::run(args).await?,
        Command::DemoEstate(args) => medic_demo::estate::run(args).await?,
    }
    Ok(())
}

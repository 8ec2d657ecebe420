//! `npyflow`: the command-line face of the npyflow library.
//!
//! A thin shell in ripgrep's style: clap parses, the library does the work,
//! this crate prints. Every failure ends as one line `npyflow: <message>` on
//! stderr and exit status 2; a closed stdout (`npyflow info *.npy | head`)
//! ends quietly with status 0.

mod bench;
mod cache;
mod convert;
mod demo;
mod fit;
mod info;
mod iterate;
mod opts;
mod preview;
mod synth;
mod ui;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Out-of-core, Keras-compatible batch iteration over .npy image datasets.
///
/// Start with `npyflow demo`; every subcommand has its own --help.
#[derive(Debug, Parser)]
#[command(
    name = "npyflow",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Header, dtype, shape, order, offset, alignment and page-cache residency of .npy/.npz files.
    Info(info::Args),
    /// Convert image folders, .npz archives and arrays into mappable .npy files.
    #[command(subcommand)]
    Convert(convert::Command),
    /// Page-cache residency, eviction and warming of files (like vmtouch).
    Cache(cache::Args),
    /// Run epochs of augmented batches and print the telemetry.
    Iterate(Box<iterate::Args>),
    /// Fit featurewise statistics (mean, std, ZCA) in one streaming pass.
    Fit(Box<fit::Args>),
    /// Write a PNG contact sheet of original and augmented samples.
    Preview(Box<preview::Args>),
    /// The page-cache benchmark (order × cold/warm × advice) on your own file.
    Bench(bench::Args),
    /// Build a synthetic dataset, fit, iterate an augmented epoch, preview: the tour.
    Demo(demo::Args),
}

fn main() -> ExitCode {
    // The benchmark re-executes this binary inside a memory cgroup; in that
    // child, measuring is all there is to do.
    if let Some(code) = npyflow_bench::child_main() {
        return ExitCode::from(code.clamp(0, 255) as u8);
    }
    // Library warnings (Keras' flag overrides...) in the same voice as errors.
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .format(|buf, record| {
            use std::io::Write;
            writeln!(
                buf,
                "npyflow: {}: {}",
                record.level().as_str().to_lowercase(),
                record.args()
            )
        })
        .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return ui::clap_exit(e),
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if ui::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if e.is::<ui::AlreadyReported>() => ExitCode::from(2),
        Err(e) => {
            eprintln!("npyflow: {}", ui::one_line(&e));
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let ui = ui::Ui { quiet: cli.quiet };
    match cli.command {
        Command::Info(args) => info::run(&args, &ui),
        Command::Convert(cmd) => convert::run(&cmd, &ui),
        Command::Cache(args) => cache::run(&args, &ui),
        Command::Iterate(args) => iterate::run(&args, &ui),
        Command::Fit(args) => fit::run(&args, &ui),
        Command::Preview(args) => preview::run(&args, &ui),
        Command::Bench(args) => bench::run(&args, &ui),
        Command::Demo(args) => demo::run(&args, &ui),
    }
}

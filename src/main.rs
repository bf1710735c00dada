//! `epochfuse`: parse the command line, run it, print one line on failure.

use clap::Parser;

fn main() {
    let cli = epochfuse::cli::Cli::parse();
    if let Err(e) = epochfuse::run(cli) {
        eprintln!("epochfuse: error: {e}");
        std::process::exit(e.code);
    }
}

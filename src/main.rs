//! The `apmgate` command. Errors become exit codes here and nowhere else.
#![forbid(unsafe_code)]

mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}

use std::process::ExitCode;

fn main() -> ExitCode {
    floodrt::cli::main()
}

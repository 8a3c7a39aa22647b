use std::process::ExitCode;

fn main() -> ExitCode {
    floodtrain::cli::main()
}

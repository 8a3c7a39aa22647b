use std::process::ExitCode;

fn main() -> ExitCode {
    floodtrain::allocator::keep_freed_memory();
    floodtrain::cli::main()
}

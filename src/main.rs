//! The `claw` binary: parse the command line and hand over to the library.

/// mimalloc rather than glibc's malloc: per-thread free lists without arena locks; see the
/// README's Benchmark section for the measurement.
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    claw::cli::main()
}

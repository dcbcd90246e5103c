//! `hearth`: parse the command line and hand over to `hearth::cli`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(hearth::cli::main(args));
}

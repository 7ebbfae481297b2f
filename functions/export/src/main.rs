//! The export function. Its behaviour arrives with its issue; the crate exists so the
//! workspace, the template and CI already have its place.

fn main() {
    eprintln!("the export function is not implemented yet");
    std::process::exit(1);
}

#[growstack::growable]
fn f(
    #[cfg(unix)] a: u32,
    #[cfg(windows)] b: u32,
    #[cfg(target_os = "linux")] c: u32,
    #[cfg(target_os = "macos")] d: u32,
    #[cfg(target_os = "freebsd")] e: u32,
) {
}

fn main() {}

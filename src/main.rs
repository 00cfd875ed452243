fn main() {
    // Like other Unix tools, end quietly when the reader of stdout goes away
    // (`rcluster logs | head`), instead of panicking on a failed print.
    // SAFETY: setting a signal disposition before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    std::process::exit(rcluster::main());
}

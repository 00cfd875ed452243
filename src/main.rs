fn main() {
    std::process::exit(rcluster::main());
}

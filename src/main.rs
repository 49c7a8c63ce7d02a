fn main() {
    println!("promlet {}", promlet::VERSION);
}

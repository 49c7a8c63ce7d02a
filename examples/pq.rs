fn main() {
    let q = std::env::args().nth(1).unwrap();
    match promlet::promql::parse(&q) {
        Ok(e) => println!("{e}"),
        Err(e) => println!("{e}"),
    }
}

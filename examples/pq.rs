use promlet::model::Labels;
use promlet::promql::testing::MemStorage;
use promlet::tsdb::Appender;
fn main() {
    let mut s = MemStorage::new();
    for i in 0..=10 {
        s.append(
            &Labels::from_pairs([("__name__", "http_requests"), ("job", "a")]),
            i * 300_000,
            i as f64 * 1.33,
        )
        .unwrap();
    }
    let q = std::env::args().nth(1).unwrap();
    let e = promlet::promql::parse(&q).unwrap();
    println!("{e:?}");
    println!(
        "{:?}",
        promlet::promql::instant_query(&s, &q, &e, 3_000_000, &Default::default())
    );
}

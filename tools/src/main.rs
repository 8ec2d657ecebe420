fn main() { println!("npyflow"); }

fn main() {
    println!("gatehouse: not yet assembled");
}

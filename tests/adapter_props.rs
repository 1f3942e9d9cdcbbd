//! Random requests against the adapter: whatever arrives, the answer is a
//! well-formed tRPC response (never a 500, never a non-JSON body) and the
//! batch status rule holds.

mod common;

use common::random::{RandomRequest, Rng, check_answer};
use common::*;

#[tokio::test]
async fn random_requests_get_well_formed_answers() {
    let app = app();
    let mut rng = Rng(0xDEAD_BEEF_CAFE_F00D);
    for _ in 0..3_000 {
        let req = RandomRequest::generate(&mut rng);
        let Some(built) = req.build() else {
            panic!("generated an unbuildable request: {req:?}");
        };
        let r = send(&app, built).await;
        check_answer(&req, &r, true);
    }
}

//! `GET /v2/liveness`: answers while the process serves requests. No authentication.

use serde::Serialize;

use super::envelope::Data;

#[derive(Serialize)]
pub struct Liveness {
    message: &'static str,
}

pub async fn liveness() -> Data<Liveness> {
    Data(Liveness { message: "OK" })
}

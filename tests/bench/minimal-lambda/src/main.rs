//! The reference of `tests/bench/cold_start.sh`: what any Rust function on
//! `lambda_runtime` pays to start, so a function's own init is what it adds to this.

use lambda_runtime::{Error, LambdaEvent, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_runtime::run(service_fn(|event: LambdaEvent<Value>| async move { Ok::<Value, Error>(event.payload) })).await
}

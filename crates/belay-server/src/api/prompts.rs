//! `POST /v1/prompts/{id}`: the answer to a question a connection asked
//! (see [`crate::prompts`]): `{"answers": ["..."]}`, or `{"answers": null}`
//! to decline. The answer travels only here, in the request body on the
//! 0600 socket: never logged, never stored.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use serde::Deserialize;

use super::ApiError;
use crate::state::Shared;

#[derive(Deserialize)]
pub struct AnswerBody {
    answers: Option<Vec<String>>,
}

pub async fn answer(
    State(state): State<Shared>,
    Path(id): Path<u64>,
    body: Result<Json<AnswerBody>, JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(body) = body?;
    if state.prompts.answer(id, body.answers) {
        Ok(Json(serde_json::json!({ "answered": id })))
    } else {
        Err(ApiError::not_found(format!("no question {id} is waiting")))
    }
}

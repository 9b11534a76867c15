//! Evaluating the served model on a SQuAD file: [`upload`] (receiving the file), [`run`] (the
//! one evaluation path: chunks through the queue at background priority, progress, the
//! official scores and the report), [`sync`] (`POST /evaluate`, which waits for it), [`jobs`]
//! (evaluations that outlive their request) and [`routes`] (`/evaluations`).

pub mod jobs;
pub mod routes;
pub mod run;
pub mod sync;
pub mod upload;

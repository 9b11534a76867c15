//! Evaluating the served model on a SQuAD file: [`upload`] (receiving the file), [`run`] (the
//! one evaluation path: chunks through the queue, progress, the official scores and the
//! report), `backend` (its windows to the queue at background priority, a few groups ahead),
//! [`sync`] (`POST /evaluate`, which waits for it), [`jobs`] (evaluations that outlive their
//! request) and [`routes`] (`/evaluations`).

mod backend;
pub mod jobs;
pub mod routes;
pub mod run;
pub mod sync;
pub mod upload;

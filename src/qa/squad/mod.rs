//! SQuAD dataset files: their schema, loading with located errors, and the official metrics.

pub mod load;
pub mod metrics;
pub mod normalize;
pub mod passages;
pub mod report;
pub mod schema;
pub mod scores;

pub use load::{load_squad, parse_squad, parse_squad_within, LoadError};
pub use schema::{Answer, Article, Example, Paragraph, QuestionAnswers, SquadFile, SquadVersion};

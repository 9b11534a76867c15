"""The minimal FastAPI/uvicorn server every Python peer runs behind for the HTTP benchmarks:
bertqa's /answer JSON shape ({question, context} -> {answer, score, start, end}) and /ready,
so that benches/load.rs measures each peer exactly as it measures bertqa."""


def serve_answers(answer, port):
    """Serves `answer(question, context) -> dict` on 127.0.0.1:PORT until stopped."""
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    app = FastAPI()

    class Query(BaseModel):
        question: str
        context: str

    @app.post("/answer")
    def answer_route(query: Query):
        return answer(query.question, query.context)

    @app.get("/ready")
    def ready():
        return {"status": "ok"}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
